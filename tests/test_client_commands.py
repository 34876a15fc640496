"""``fhir-server client …`` and ``fhir-server token`` (fhir_server/cli/access.py), run as an operator runs them,
against the session's server and database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuthError
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_server.auth.assertion import ClientCredentials, new_client_key, public_jwks
from fhir_server.auth.scopes import HPI_SCOPE_PREFIX

from .support import ROOT, Server, fresh_role, stored_counts

ROLE = "/PractitionerRole/R00000029-P"


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server", *args], env=server.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def write_jwks(folder: Path, jwks: dict[str, t.Any]) -> str:
    path = folder / "jwks.json"
    path.write_text(json.dumps(jwks))
    return str(path)


def create(server: Server, folder: Path, name: str, scopes: str, private_jwk: dict[str, t.Any] | None = None
           ) -> ClientCredentials:
    """``client create``, and what it printed, as a client keeps it."""
    private_jwk = private_jwk or new_client_key()
    done = cli(server, "client", "create", name, "--scopes", scopes, "--jwks", write_jwks(folder, public_jwks(private_jwk)))
    assert done.returncode == 0, done.stderr
    client_id = re.search(r"^client_id\s+(\S+)$", done.stdout, re.M)
    key = re.search(r"^x-api-key\s+(\S+)", done.stdout, re.M)
    assert client_id and key, done.stdout
    return ClientCredentials(client_id[1], key[1], private_jwk)


def get(server: Server, credentials: ClientCredentials, path: str = ROLE, *scopes: str) -> requests.Response:
    return requests.get(server.base_url + path, headers=server.headers(*scopes, credentials=credentials), timeout=30)


def listed(server: Server, client_id: str) -> str:
    return next(line for line in cli(server, "client", "list").stdout.splitlines() if line.startswith(client_id))


def test_a_client_is_created_with_its_key_and_gets_tokens_for_its_scopes(server, tmp_path):
    client = create(server, tmp_path, "cli: reader", "PractitionerRole.r PractitionerRole.s")
    assert get(server, client, ROLE, "PractitionerRole.r").status_code == 200
    line = listed(server, client.client_id)
    assert "cli: reader" in line and "active" in line and line.endswith("PractitionerRole.r PractitionerRole.s")
    assert client.api_key not in cli(server, "client", "list").stdout + cli(server, "api-key", "list").stdout


def test_full_scope_names_are_taken_and_unknown_ones_refused(server, tmp_path, mongo):
    client = create(server, tmp_path, "cli: full names", f"{HPI_SCOPE_PREFIX}Practitioner.r")
    assert listed(server, client.client_id).endswith("Practitioner.r")
    before = mongo["clients"].count_documents({})
    refused = cli(server, "client", "create", "cli: bad scope", "--scopes", "PractitionerRole.x",
                  "--jwks", write_jwks(tmp_path, public_jwks(new_client_key())))
    assert refused.returncode == 2 and "unknown scope 'PractitionerRole.x'" in refused.stderr
    assert mongo["clients"].count_documents({}) == before


def _ec_p256_jwks() -> dict[str, t.Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {"keys": [{**jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True), "kid": "p256", "alg": "ES256"}]}


def _short_rsa_jwks() -> dict[str, t.Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    return {"keys": [{**jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "rsa-1024", "alg": "RS384"}]}


@pytest.mark.parametrize("jwks, says", [
    (lambda: {"keys": [new_client_key()]}, "private material"),
    (lambda: {"keys": [{k: v for k, v in public_jwks(new_client_key())["keys"][0].items() if k != "kid"}]}, "kid"),
    (_ec_p256_jwks, "P-384"),
    (_short_rsa_jwks, "2048"),
    (lambda: {"keys": []}, "at least one key"),
    (lambda: public_jwks(new_client_key())["keys"][0], "JWK Set"),
], ids=["private key", "no kid", "P-256", "RSA 1024", "no key", "a key, not a set"])
def test_a_bad_jwk_set_is_refused_with_a_clear_message_and_nothing_is_stored(server, tmp_path, mongo, jwks, says):
    before = (mongo["clients"].count_documents({}), mongo["api_keys"].count_documents({}))
    refused = cli(server, "client", "create", "cli: bad jwks", "--scopes", "PractitionerRole.r",
                  "--jwks", write_jwks(tmp_path, jwks()))
    assert refused.returncode == 2
    assert "--jwks" in refused.stderr and says in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (mongo["clients"].count_documents({}), mongo["api_keys"].count_documents({})) == before


def test_scopes_are_replaced_and_a_token_loses_what_the_client_no_longer_holds(server, tmp_path):
    client = create(server, tmp_path, "cli: narrowed", "PractitionerRole.r PractitionerRole.s")
    token_headers = server.headers("PractitionerRole.r", "PractitionerRole.s", credentials=client)
    search = "/PractitionerRole?practitioner=99ZZZS"
    assert requests.get(server.base_url + search, headers=token_headers, timeout=30).status_code == 200
    done = cli(server, "client", "scopes", client.client_id, "PractitionerRole.r")
    assert (done.returncode, done.stdout.strip()) == (0, f"{client.client_id} holds PractitionerRole.r.")
    # The session server rechecks clients on every request (API_KEY_CACHE_SECONDS=0): the token issued
    # before still reads, but no longer searches.
    assert requests.get(server.base_url + ROLE, headers=token_headers, timeout=30).status_code == 200
    assert requests.get(server.base_url + search, headers=token_headers, timeout=30).status_code == 403
    assert cli(server, "client", "scopes", "no-such-client", "PractitionerRole.r").returncode == 1


def test_another_key_for_a_client_works_beside_the_first(server, tmp_path):
    client = create(server, tmp_path, "cli: two keys", "PractitionerRole.r")
    done = cli(server, "client", "key", client.client_id)
    assert done.returncode == 0, done.stderr
    second = client._replace(api_key=re.search(r"^x-api-key\s+(\S+)", done.stdout, re.M)[1])
    assert get(server, second, ROLE, "PractitionerRole.r").status_code == 200
    assert get(server, client, ROLE, "PractitionerRole.r").status_code == 200
    assert cli(server, "client", "key", "no-such-client").returncode == 1


def test_a_revoked_client_is_refused_with_all_its_keys_and_gets_no_token(server, tmp_path, mongo):
    client = create(server, tmp_path, "cli: revoked", "PractitionerRole.r PractitionerRole.c")
    done = cli(server, "client", "key", client.client_id)
    second = client._replace(api_key=re.search(r"^x-api-key\s+(\S+)", done.stdout, re.M)[1])
    token = server.token("PractitionerRole.r", "PractitionerRole.c", credentials=client)
    assert cli(server, "client", "revoke", client.client_id).returncode == 0
    assert "revoked" in listed(server, client.client_id)
    before = stored_counts(mongo)
    for creds in (client, second):
        headers = {"Authorization": f"Bearer {token}", "x-api-key": creds.api_key, "userid": "99ZZZS"}
        assert requests.get(server.base_url + ROLE, headers=headers, timeout=30).status_code == 403
        assert requests.post(server.base_url + "/PractitionerRole", json=fresh_role(), headers=headers, timeout=30).status_code == 403
    assert stored_counts(mongo) == before
    with pytest.raises(OAuthError) as refused:
        server.token(credentials=client)
    assert refused.value.error == "invalid_client"
    assert cli(server, "client", "revoke", client.client_id).returncode == 1  # once only


def test_the_token_command_prints_a_token_and_nothing_else(server):
    done = cli(server, "token")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token)
    headers = {"Authorization": f"Bearer {token}", "x-api-key": server.api_key, "userid": "99ZZZS"}
    assert requests.get(server.base_url + ROLE, headers=headers, timeout=30).status_code == 200


def test_the_token_command_asks_for_the_scopes_it_is_given(server):
    done = cli(server, "token", "--scopes", "PractitionerRole.r")
    assert done.returncode == 0, done.stderr
    headers = {"Authorization": f"Bearer {done.stdout.strip()}", "x-api-key": server.api_key, "userid": "99ZZZS"}
    assert requests.get(server.base_url + ROLE, headers=headers, timeout=30).status_code == 200
    search = requests.get(server.base_url + "/PractitionerRole?practitioner=99ZZZS", headers=headers, timeout=30)
    assert search.status_code == 403
