"""Two servers on one database, as two hosts of one deployment: a client revoked or narrowed with the
CLI is refused by both within API_KEY_CACHE_SECONDS (10 s by default), and a rotated signing key
reaches both while the tokens signed before stay valid."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import typing as t

import jwt
import pytest
import requests
from pymongo import MongoClient

from fhir_server.auth.assertion import ClientCredentials

from .support import ROOT, Server, register_client, start_server

ROLE = "/PractitionerRole/R00000029-P"
SEARCH = "/PractitionerRole?practitioner=99ZZZS"
BOUND = 15  # seconds: API_KEY_CACHE_SECONDS and the signing keys' refresh are 10 s, with room for a slow machine


class Hosts(t.NamedTuple):
    first: Server
    second: Server
    mongo: t.Any

    @property
    def both(self) -> tuple[Server, Server]:
        return self.first, self.second


@pytest.fixture(scope="module")
def hosts(tmp_path_factory) -> t.Iterator[Hosts]:
    # The first as `make run` starts it (its embedded database); the second on that database, with the
    # default API_KEY_CACHE_SECONDS and TOKEN_SECONDS.
    first = start_server(tmp_path_factory.mktemp("first-host"), WEB_CONCURRENCY="2")
    uri = (first.data_dir / "mongodb-uri").read_text().strip()
    second = None
    client: t.Any = None
    try:
        second = start_server(tmp_path_factory.mktemp("second-host"), MONGODB_URI=uri, WEB_CONCURRENCY="2")
        client = MongoClient(uri)
        yield Hosts(first, second, client[first.env.get("MONGODB_DATABASE", "fhir")])
    finally:
        if client is not None:
            client.close()
        if second is not None:
            second.stop()
        first.stop()


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "fhir_server", *args], env=server.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done


def status(server: Server, headers: dict[str, str], path: str = ROLE) -> int:
    return requests.get(server.base_url + path, headers=headers, timeout=30).status_code


def within(seconds: float, condition: t.Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within ``seconds``, asked every 0.5 s."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def headers(token: str, credentials: ClientCredentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-api-key": credentials.api_key, "userid": "99ZZZS"}


def test_the_database_is_one(hosts):
    assert hosts.mongo["clients"].count_documents({"name": "development"}) == 1
    assert not (hosts.second.data_dir / "dev-client.json").exists()  # the second found the first's client


def test_a_client_revoked_with_the_cli_is_refused_by_both_hosts_within_10_s(hosts):
    client = register_client(hosts.mongo, "two hosts: revoked")
    sent = headers(hosts.first.token(credentials=client), client)
    assert [status(host, sent) for host in hosts.both] == [200, 200]  # now in both hosts' caches
    cli(hosts.first, "client", "revoke", client.client_id)
    assert within(BOUND, lambda: [status(host, sent) for host in hosts.both] == [403, 403])


def test_scopes_narrowed_with_the_cli_apply_on_both_hosts_within_10_s(hosts):
    client = register_client(hosts.mongo, "two hosts: narrowed", "PractitionerRole.r", "PractitionerRole.s")
    sent = headers(hosts.second.token("PractitionerRole.r", "PractitionerRole.s", credentials=client), client)
    assert [status(host, sent, SEARCH) for host in hosts.both] == [200, 200]
    cli(hosts.second, "client", "scopes", client.client_id, "PractitionerRole.r")
    assert within(BOUND, lambda: [status(host, sent, SEARCH) for host in hosts.both] == [403, 403])
    assert [status(host, sent) for host in hosts.both] == [200, 200]  # what it still holds


def test_a_rotated_signing_key_reaches_both_hosts_and_older_tokens_stay_valid(hosts):
    credentials = hosts.first.credentials
    before = hosts.first.token(credentials=credentials)
    old_kid = jwt.get_unverified_header(before)["kid"]
    printed = cli(hosts.first, "signing-key", "rotate").stdout
    new_kid = re.search(r"signed with key (\S+)\.", printed)[1]
    assert new_kid != old_kid

    def newly_signed(host: Server) -> bool:
        return jwt.get_unverified_header(host.token(credentials=credentials))["kid"] == new_kid

    assert within(BOUND, lambda: all(newly_signed(host) for host in hosts.both))
    after = [hosts.first.token(credentials=credentials), hosts.second.token(credentials=credentials)]
    for token in (before, *after):
        assert [status(host, headers(token, credentials)) for host in hosts.both] == [200, 200]

    def published(host: Server) -> set[str]:
        return {k["kid"] for k in requests.get(host.base_url + "/auth/jwks", timeout=10).json()["keys"]}

    # Each worker reads the keys again within 10 s: the one answering may not have yet. The old key
    # stays published beside the new one, as it still verifies what it signed.
    assert within(BOUND, lambda: all({old_kid, new_kid} <= published(host) for host in hosts.both))


def test_the_token_command_finds_the_running_servers_database_and_both_hosts_accept_its_token(hosts):
    printed = cli(hosts.first, "token").stdout  # no MONGODB_URI: the database of the `serve` in DATA_DIR
    token = printed.strip()
    assert printed == token + "\n"
    sent = headers(token, hosts.first.credentials)
    assert [status(host, sent) for host in hosts.both] == [200, 200]
