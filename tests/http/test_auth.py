"""HPI authentication (SPEC.md §6): the x-api-key, the bearer token of the key's client, userid and
User-Agent, in that order; and clients registered with the CLI. The token flow itself: test_tokens.py;
scopes: test_scopes.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from urllib3.util import SKIP_HEADER

from fhir_server.auth.assertion import ClientCredentials, new_client_key, public_jwks
from fhir_server.outcome import Msg, issue

from ..support import DATA, ROOT, fresh_role, outcome_messages, register_client, text

ROLE = "/PractitionerRole/R00000029-P"


def cli(server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server", *args], env=server.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=check)


def get(server, path: str, headers: dict[str, str | None]) -> requests.Response:
    return requests.get(server.base_url + path, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def headers(server) -> dict[str, str]:
    return server.headers()


def unauthorized(response: requests.Response, error: str) -> None:
    """401 "Unauthorized" with a Bearer challenge naming ``error`` (RFC 6750 §3)."""
    assert response.status_code == 401
    assert outcome_messages(response) == [issue(Msg.UNAUTHORIZED).diagnostics]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and f'error="{error}"' in challenge


def test_the_three_headers_and_a_user_agent_get_in(server, headers):
    assert get(server, ROLE, headers).status_code == 200


def test_missing_api_key_is_forbidden(server, headers):
    response = requests.post(server.base_url + "/PractitionerRole", json=fresh_role(),
                             headers={**headers, "x-api-key": None}, timeout=10)
    assert response.status_code == 403
    assert outcome_messages(response) == ["Forbidden"] == [issue(Msg.FORBIDDEN).diagnostics]


def test_unknown_api_key_is_forbidden_even_with_a_good_token(server, headers):
    response = get(server, ROLE, {**headers, "x-api-key": "hpi_guess"})
    assert response.status_code == 403
    assert outcome_messages(response) == [issue(Msg.FORBIDDEN).diagnostics]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_no_bearer_token_is_401_invalid_request(server, headers, authorization):
    unauthorized(get(server, ROLE, {**headers, "Authorization": authorization}), "invalid_request")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzM4NCJ9.e30.AAAA"])
def test_a_token_that_is_no_jwt_is_401_invalid_token(server, headers, token):
    unauthorized(get(server, ROLE, {**headers, "Authorization": f"Bearer {token}"}), "invalid_token")


def test_the_scheme_name_is_case_insensitive(server, headers):
    token = headers["Authorization"].split()[1]
    assert get(server, ROLE, {**headers, "Authorization": f"bearer {token}"}).status_code == 200


def test_missing_userid_is_401_as_the_ig_shows(server, headers):
    response = get(server, ROLE, {**headers, "userid": None})
    assert response.status_code == 401
    assert response.json() == json.loads((DATA / "OperationOutcome-missing-userid-header.json").read_text())


@pytest.mark.parametrize("userid", ["x" * 65, "99\tZZZS", "99\x7fZZZS", "ā-user"])
def test_an_invalid_userid_is_401(server, headers, userid):
    response = requests.get(server.base_url + ROLE, headers={**headers, "userid": userid.encode()}, timeout=30)
    assert response.status_code == 401
    assert outcome_messages(response) == [text(Msg.INVALID_USERID, limit=64)]


def test_a_userid_of_64_printable_characters_is_accepted(server, headers):
    assert get(server, ROLE, {**headers, "userid": "Dr. O'Brien (locum) #" + "7" * 43}).status_code == 200


def test_missing_user_agent_is_400(server, headers):
    response = get(server, ROLE, {**headers, "User-Agent": SKIP_HEADER})  # else urllib3 sends its own
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.USER_AGENT_MISSING).diagnostics]


def test_the_key_is_checked_first_then_the_token_then_userid(server, headers):
    assert get(server, ROLE, {"x-api-key": "hpi_guess"}).status_code == 403
    unauthorized(get(server, ROLE, {"x-api-key": headers["x-api-key"]}), "invalid_request")
    assert get(server, ROLE, {**headers, "userid": None, "User-Agent": SKIP_HEADER}).status_code == 401


@pytest.mark.parametrize("path", ["/metadata", "/openapi.json", "/.well-known/smart-configuration", "/auth/jwks"])
def test_the_public_documents_need_no_credentials(server, path):
    response = requests.get(server.base_url + path, timeout=10)
    assert response.status_code == 200
    assert "WWW-Authenticate" not in response.headers


def test_the_development_client_was_made_because_the_database_had_none(server, mongo):
    clients = list(mongo["clients"].find())
    assert clients[0]["name"] == "development"  # the first; tests register others
    keys = list(mongo["api_keys"].find({"client_id": clients[0]["_id"]}))
    assert [k["name"] for k in keys] == ["development"]
    assert server.api_key == server.credentials.api_key
    stored = json.dumps([clients, keys], default=str)
    assert server.api_key not in stored and server.credentials.private_jwk["d"] not in stored  # hash and public key only


def test_a_token_of_the_keys_client_is_needed_not_any_token(server, mongo):
    other = register_client(mongo, "auth-test other")
    response = get(server, ROLE, {**server.headers(credentials=other), "x-api-key": server.api_key})
    unauthorized(response, "invalid_token")


def test_clients_are_created_listed_and_revoked_with_the_cli(server, tmp_path):
    private_jwk = new_client_key()
    (tmp_path / "jwks.json").write_text(json.dumps(public_jwks(private_jwk)))
    out = cli(server, "client", "create", "integration-test", "--scopes", "PractitionerRole.r PractitionerRole.s",
              "--jwks", str(tmp_path / "jwks.json")).stdout
    fields = dict(line.split(None, 1) for line in out.splitlines() if line.startswith(("client_id", "x-api-key")))
    client_id, key = fields["client_id"].strip(), fields["x-api-key"].split()[0]
    credentials = ClientCredentials(client_id, key, private_jwk)
    assert get(server, ROLE, server.headers("PractitionerRole.r", credentials=credentials)).status_code == 200
    listing = cli(server, "client", "list").stdout
    line = next(x for x in listing.splitlines() if x.startswith(client_id))
    assert "integration-test" in line and "active" in line and "PractitionerRole.r PractitionerRole.s" in line
    assert key not in listing
    cli(server, "client", "revoke", client_id)
    line = next(x for x in cli(server, "client", "list").stdout.splitlines() if x.startswith(client_id))
    assert "revoked" in line
    assert "revoked" in next(x for x in cli(server, "api-key", "list").stdout.splitlines() if "integration-test" in x)
    # The session server rechecks keys on every request (API_KEY_CACHE_SECONDS=0).
    response = get(server, ROLE, {"Authorization": "Bearer x", "x-api-key": key, "userid": "99ZZZS"})
    assert response.status_code == 403
