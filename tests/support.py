"""Test helpers: starting the server as `make run` does, calling it with the HPI headers, test data."""

from __future__ import annotations

import copy
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import typing as t
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import import_key

from fhir_server import identifiers as ids
from fhir_server.auth import ALL
from fhir_server.auth.assertion import ClientCredentials, new_client_key, public_jwks
from fhir_server.auth.scopes import HPI_SCOPE_PREFIX
from fhir_server.embedded_db import free_port
from fhir_server.outcome import Msg, issue
from fhir_server.store.api_keys import ApiKeyStore
from fhir_server.store.clients import ClientStore

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CREATE_EXAMPLE = json.loads((DATA / "create-example.json").read_text())
FHIR_JSON = "application/fhir+json"


@dataclass
class Server:
    """A running ``fhir-server serve``."""

    process: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    env: dict[str, str]

    @property
    def api_key(self) -> str:
        return (self.data_dir / "dev-api-key").read_text().strip()

    @property
    def credentials(self) -> ClientCredentials:
        """The development client `serve` registered."""
        return ClientCredentials.load(self.data_dir / "dev-client.json")

    def token(self, *scopes: str, credentials: ClientCredentials | None = None) -> str:
        """An access token of the development client (or ``credentials``') with ``scopes`` (short
        names; default every one), fetched as an OAuth2 client library fetches it."""
        return fetch_token(self.base_url, credentials or self.credentials, scopes or sorted(ALL))["access_token"]

    def headers(self, *scopes: str, credentials: ClientCredentials | None = None) -> dict[str, str]:
        """The HPI's request headers (SPEC.md §6) for the development client (or ``credentials``)."""
        creds = credentials or self.credentials
        return {"Authorization": f"Bearer {self.token(*scopes, credentials=creds)}", "x-api-key": creds.api_key,
                "userid": "99ZZZS"}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        return self.process.wait(60)


def start_server(data_dir: Path, **env: str) -> Server:
    port = free_port()
    # Development, as `make run`, even with MONGODB_URI: example data and the development client.
    full_env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(port), "FHIR_SERVER_ENV": "development", **env}
    log = open(data_dir.parent / f"server-{port}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "fhir_server", "serve"], env=full_env,
                               stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(process, f"http://127.0.0.1:{port}", data_dir, full_env)
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(server.base_url + "/metadata", timeout=1).status_code == 200:
                return server
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its workers still booting
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start; see {log.name}")
        time.sleep(0.2)


def fetch_token(base_url: str, credentials: ClientCredentials, scopes: t.Iterable[str]) -> dict[str, t.Any]:
    """The token endpoint's answer, asked through Authlib's OAuth2 client with ``private_key_jwt``
    (RFC 7523) as SMART Backend Services says: an ES384 assertion naming the key's kid, valid 4 minutes."""
    token_url = base_url + "/auth/token"
    auth = PrivateKeyJWT(token_url, alg=credentials.private_jwk.get("alg", "ES384"),
                         headers={"kid": credentials.private_jwk["kid"]}, claims={"exp": int(time.time()) + 240})
    session = OAuth2Session(credentials.client_id, import_key(credentials.private_jwk), token_endpoint_auth_method=auth,
                            scope=" ".join(HPI_SCOPE_PREFIX + s for s in scopes))
    try:
        return dict(session.fetch_token(token_url, grant_type="client_credentials"))
    finally:
        session.close()



def register_client(mongo: t.Any, name: str, *scopes: str, rate_limit: str | None = None) -> ClientCredentials:
    """A new client holding ``scopes`` (short names; default every one) with an ES384 key and an API
    key, registered as `fhir-server client create` registers one."""
    private_jwk = new_client_key()
    client = ClientStore(mongo).create(name, scopes or ALL, public_jwks(private_jwk))
    _, key = ApiKeyStore(mongo).create(name, rate_limit, client.client_id)
    return ClientCredentials(client.client_id, key, private_jwk)

class Api:
    """HTTP calls to the server with the HPI's required headers."""

    def __init__(self, server: Server) -> None:
        self.base = server.base_url
        self.session = requests.Session()
        self.session.headers.update({**server.headers(), "Content-Type": FHIR_JSON})

    def post(self, path: str, body: t.Any = None, *, data: bytes | str | None = None, **kw: t.Any) -> requests.Response:
        payload = data if data is not None else json.dumps(body)
        return self.session.post(self.base + path, data=payload, timeout=30, **kw)

    def get(self, path: str, **kw: t.Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, **kw)

    def put(self, path: str, body: t.Any, *, if_match: str | None = None, **kw: t.Any) -> requests.Response:
        headers = {**kw.pop("headers", {}), **({"If-Match": if_match} if if_match is not None else {})}
        return self.session.put(self.base + path, data=json.dumps(body), headers=headers, timeout=30, **kw)

    def delete(self, path: str, **kw: t.Any) -> requests.Response:
        return self.session.delete(self.base + path, timeout=30, **kw)

    def create(self, role: dict[str, t.Any]) -> requests.Response:
        return self.post("/PractitionerRole", role)


def _role_codes() -> t.Iterator[dict[str, t.Any]]:
    cs = json.loads((ROOT / "profiles" / "CodeSystem-ANZCO-occupations-2013-1.2.json").read_text())
    for concept in cs["concept"]:
        if concept["code"] != CREATE_EXAMPLE["code"][0]["coding"][0]["code"]:
            yield {"coding": [{"system": cs["url"], "version": "1.2", "code": concept["code"], "display": concept["display"]}],
                   "text": concept["display"]}


_fresh_codes = _role_codes()


def fresh_role(**changes: t.Any) -> dict[str, t.Any]:
    """The IG create example with a role code no other test uses, so it is never a duplicate by accident."""
    role = copy.deepcopy(CREATE_EXAMPLE)
    role["code"] = [next(_fresh_codes)]
    role.update(changes)
    return role


PERSON = "https://standards.digital.health.nz/ns/hpi-person-id"
_CPN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_taken_cpns: set[str] = set()


def fresh_cpn() -> str:
    """A CPN no other test uses (2 digits and 4 letters; its check character is not validated)."""
    while True:
        n = uuid.uuid4().int
        cpn = f"{n % 100:02d}" + "".join(_CPN_LETTERS[(n >> (8 * i)) % len(_CPN_LETTERS)] for i in range(4))
        if cpn not in _taken_cpns:
            _taken_cpns.add(cpn)
            return cpn


def checked_ids(prefix: str) -> t.Iterator[str]:
    """Organisation (G) or facility (F) ids with a correct mod-11 check character: ``prefix`` and 3 digits."""
    for n in itertools.count(100):
        stem = f"{prefix}{n:03d}"
        check = ids.organisation_check_character(stem)
        if check:
            yield f"{stem}-{check}"


def practitioner(cpn: str) -> dict[str, t.Any]:
    return {"resourceType": "Practitioner", "identifier": [{"use": "official", "system": PERSON, "value": cpn}],
            "name": [{"family": "Bundle", "given": ["Test"]}]}


def stored_counts(mongo: t.Any) -> tuple[int, int]:
    """What a rejected request must leave alone: the roles, and the periods their business keys hold."""
    held = sum(len(d["periods"]) for d in mongo["role_keys"].find())
    return mongo["practitioner_roles"].count_documents({}), held


def outcome_messages(response: requests.Response) -> list[str]:
    return [i["diagnostics"] for i in response.json()["issue"]]


def outcome_expressions(response: requests.Response) -> list[str]:
    return [e for i in response.json()["issue"] for e in i.get("expression", [])]


def text(msg: Msg, **values: object) -> str:
    """The diagnostics the server writes for catalogue entry ``msg`` with ``values``."""
    return issue(msg, **values).diagnostics
