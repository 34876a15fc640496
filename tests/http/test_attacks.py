"""What a caller holding some scopes, another client's credentials or none at all tries, and gets:
each test here is an attack the server once answered wrongly."""

from __future__ import annotations

import base64
import json
import time
import typing as t
import uuid

import pytest
import requests

from fhir_server.auth.tokens import ASSERTION_TYPE

from ..support import Server, register_client


def _b64(part: dict[str, t.Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _token_endpoint(server: Server) -> str:
    return str(requests.get(server.base_url + "/.well-known/smart-configuration", timeout=10).json()["token_endpoint"])


def test_an_assertion_whose_alg_does_not_fit_the_clients_key_is_invalid_client(server, mongo):
    """An EC client's kid with alg RS384 made PyJWT raise outside its errors: the token endpoint answered 500."""
    credentials = register_client(mongo, "attacks: alg of another key type", "PractitionerRole.r")
    url = _token_endpoint(server)
    now = int(time.time())
    claims = {"iss": credentials.client_id, "sub": credentials.client_id, "aud": url, "exp": now + 60,
              "jti": str(uuid.uuid4())}
    for alg in ("RS384", "PS384"):
        assertion = f"{_b64({'alg': alg, 'kid': credentials.private_jwk['kid']})}.{_b64(claims)}.AAAA"
        response = requests.post(url, data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                            "client_assertion": assertion, "scope": "PractitionerRole.r"}, timeout=10)
        assert response.status_code == 401, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("crit", ["a\r\nX-Injected: 1", "é", "a\"b\\", "\u2028" * 500])
def test_a_token_whose_header_the_error_would_echo_is_a_plain_401(server, crit):
    """The reason a token is refused goes into WWW-Authenticate; PyJWT's names the token's own "crit"
    values, so a new line there was a 500, and a character outside Latin-1 an answer never sent."""
    kid = requests.get(server.base_url + "/auth/jwks", timeout=10).json()["keys"][0]["kid"]
    token = f"{_b64({'alg': 'ES384', 'kid': kid, 'crit': [crit]})}.{_b64({})}.AAAA"
    response = requests.get(server.base_url + "/PractitionerRole/R00000029-P",
                            headers={**server.headers("PractitionerRole.r"), "Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401
    assert "X-Injected" not in response.headers
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert challenge.isascii() and challenge.isprintable() and len(challenge) < 400


@pytest.mark.parametrize("path", ["/auth/token", "/auth/jwks", "/.well-known/smart-configuration", "/metadata"])
def test_options_of_a_public_route_is_no_html(server, path):
    """Flask answers OPTIONS itself, with an empty body it called text/html."""
    response = requests.options(server.base_url + path, timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert "html" not in response.headers.get("Content-Type", "")
    assert "OPTIONS" in response.headers["Allow"]


def test_the_token_endpoint_does_not_parse_a_form_far_larger_than_a_token_request(server):
    """Anyone may post to the token endpoint, and parsing a 1 MiB form of 300,000 fields costs a worker
    about half a second (the test server takes 64 KiB bodies only): a form past the size of any token
    request is refused unread, in OAuth's words."""
    url = _token_endpoint(server)
    response = requests.post(url, data=b"a=&" * 20_000, timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_request"
    assert "grant_type" not in response.json()["error_description"]  # refused before the form was read
