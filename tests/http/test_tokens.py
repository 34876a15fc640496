"""SMART Backend Services tokens (fhir_server/auth/tokens.py, http/oauth.py) as a client meets them:
discovery, the token endpoint through Authlib's OAuth2 client with ``private_key_jwt``, and every
token or client assertion the server must refuse. Bad tokens and assertions are made with PyJWT."""

from __future__ import annotations

import json
import time
import typing as t
import uuid

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuthError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import HMACAlgorithm

from fhir_server.auth import ALL, check_jwks
from fhir_server.auth.assertion import ClientCredentials, new_client_key
from fhir_server.auth.scopes import HPI_SCOPE_PREFIX
from fhir_server.auth.tokens import ASSERTION_TYPE
from fhir_server.outcome import Msg, issue
from fhir_server.store.api_keys import ApiKeyStore
from fhir_server.store.clients import ClientStore

from ..support import Server, fetch_token, fresh_role, outcome_messages, register_client, start_server, stored_counts

ROLE = "/PractitionerRole/R00000029-P"


@pytest.fixture(scope="module")
def discovery(server: Server) -> dict[str, t.Any]:
    response = requests.get(server.base_url + "/.well-known/smart-configuration", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    return t.cast(dict[str, t.Any], response.json())


def call(server: Server, token: str, credentials: ClientCredentials | None = None, method: str = "GET",
         path: str = ROLE, body: t.Any = None) -> requests.Response:
    creds = credentials or server.credentials
    headers = {"Authorization": f"Bearer {token}", "x-api-key": creds.api_key, "userid": "99ZZZS"}
    return requests.request(method, server.base_url + path, json=body, headers=headers, timeout=30)


def refused_as_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401
    assert outcome_messages(response) == [issue(Msg.UNAUTHORIZED).diagnostics]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def server_keys(server: Server) -> list[dict[str, t.Any]]:
    return t.cast(list[dict[str, t.Any]], requests.get(server.base_url + "/auth/jwks", timeout=10).json()["keys"])


def signing_key(mongo) -> tuple[str, t.Any]:
    """The server's current signing key (kid, private key), read where every worker reads it, to sign
    tokens that are wrong in their claims alone."""
    doc = mongo["signing_keys"].find_one({"superseded": None}, sort=[("created", -1)])
    return doc["_id"], serialization.load_pem_private_key(doc["pem"].encode(), None)


# --- the happy flow ----------------------------------------------------------------------------------

def test_discovery_names_the_token_endpoint_and_what_it_accepts(server, discovery):
    assert discovery["token_endpoint"] == server.base_url + "/auth/token"
    assert discovery["grant_types_supported"] == ["client_credentials"]
    assert discovery["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(discovery["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert sorted(discovery["scopes_supported"]) == sorted(HPI_SCOPE_PREFIX + s for s in ALL)
    assert "client-confidential-asymmetric" in discovery["capabilities"]
    keys = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert keys and all(k["kid"] and k["alg"] == "ES384" and "d" not in k for k in keys)


def test_a_client_gets_a_bearer_token_with_the_scopes_it_asked_for(server):
    asked = ["PractitionerRole.r", "PractitionerRole.s"]
    token = fetch_token(server.base_url, server.credentials, asked)
    assert token["token_type"].lower() == "bearer" and token["expires_in"] == 86400  # TOKEN_SECONDS of the session server
    assert token["scope"].split() == [HPI_SCOPE_PREFIX + s for s in asked]
    assert call(server, token["access_token"]).status_code == 200
    header = jwt.get_unverified_header(token["access_token"])
    assert header["alg"] == "ES384" and header["kid"] in {k["kid"] for k in server_keys(server)}


def test_the_scopes_granted_are_those_asked_for_that_the_client_holds(server, mongo):
    client = register_client(mongo, "tokens: reader", "PractitionerRole.r", "Practitioner.r")
    token = fetch_token(server.base_url, client, ["PractitionerRole.r", "PractitionerRole.c", "Organization.r"])
    assert token["scope"] == HPI_SCOPE_PREFIX + "PractitionerRole.r"
    assert call(server, token["access_token"], client).status_code == 200
    before = stored_counts(mongo)
    refused = call(server, token["access_token"], client, "POST", "/PractitionerRole", fresh_role())
    assert refused.status_code == 403
    assert outcome_messages(refused) == [issue(Msg.SCOPE_REQUIRED, scope=HPI_SCOPE_PREFIX + "PractitionerRole.c").diagnostics]
    assert stored_counts(mongo) == before


def test_asking_only_for_scopes_not_held_is_invalid_scope(server, mongo):
    client = register_client(mongo, "tokens: reader only", "PractitionerRole.r")
    with pytest.raises(OAuthError) as refused:
        fetch_token(server.base_url, client, ["PractitionerRole.c", "Practitioner.a"])
    assert refused.value.error == "invalid_scope"


def test_an_rs384_client_registered_with_an_rsa_jwk_set_gets_tokens_too(server, mongo):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "rsa-1", "alg": "RS384"}
    public = {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "rsa-1", "alg": "RS384"}
    client = ClientStore(mongo).create("tokens: rsa", ALL, check_jwks({"keys": [public]}))  # as `client create` checks it
    credentials = ClientCredentials(client.client_id, ApiKeyStore(mongo).create("tokens: rsa", None, client.client_id)[1],
                                    private_jwk)
    token = fetch_token(server.base_url, credentials, ["PractitionerRole.r"])
    assert call(server, token["access_token"], credentials).status_code == 200


# --- tokens the server must refuse -------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_claims(server) -> dict[str, t.Any]:
    """The claims of a real token of the development client with every scope."""
    return jwt.decode(server.token(), options={"verify_signature": False})


def _signed(mongo, claims: dict[str, t.Any]) -> str:
    kid, key = signing_key(mongo)
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid})


class _HmacWithAnyKey(HMACAlgorithm):
    """HS384 that takes a PEM public key as its secret, as an attacker's library would (PyJWT refuses)."""

    def prepare_key(self, key: t.Any) -> bytes:
        return key if isinstance(key, bytes) else str(key).encode()


def _hmac_with_public_key(server: Server, claims: dict[str, t.Any]) -> str:
    jwk = server_keys(server)[0]
    public = jwt.PyJWK(jwk).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jws = jwt.PyJWS()
    jws.unregister_algorithm("HS384")
    jws.register_algorithm("HS384", _HmacWithAnyKey(HMACAlgorithm.SHA384))
    return jws.encode(json.dumps(claims).encode(), pem, algorithm="HS384", headers={"kid": jwk["kid"]})


def _tampered(server: Server, claims: dict[str, t.Any]) -> str:
    """A real token's signature under another payload (its scope widened)."""
    real = server.token("PractitionerRole.r")
    header = jwt.get_unverified_header(real)
    other = jwt.encode({**jwt.decode(real, options={"verify_signature": False}), "scope": claims["scope"]},
                       ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": header["kid"]})
    return ".".join(other.split(".")[:2] + real.split(".")[2:])


def _bad_token(kind: str, server: Server, mongo, claims: dict[str, t.Any]) -> str:
    now = int(time.time())
    if kind == "expired":
        return _signed(mongo, {**claims, "iat": now - 900, "nbf": now - 900, "exp": now - 300})
    if kind == "not yet valid":
        return _signed(mongo, {**claims, "iat": now, "nbf": now + 600, "exp": now + 900})
    if kind == "wrong aud":
        return _signed(mongo, {**claims, "aud": "https://elsewhere.example/fhir"})
    if kind == "wrong iss":
        return _signed(mongo, {**claims, "iss": "https://elsewhere.example/auth"})
    if kind == "no exp":
        return _signed(mongo, {k: v for k, v in claims.items() if k != "exp"})
    if kind == "alg none":
        return jwt.encode(claims, None, algorithm="none", headers={"kid": signing_key(mongo)[0]})
    if kind == "HS384 with the public key":
        return _hmac_with_public_key(server, claims)
    if kind == "unknown kid":
        return jwt.encode(claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": "no-such-kid"})
    if kind == "known kid, another key":
        return jwt.encode(claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384",
                          headers={"kid": signing_key(mongo)[0]})
    if kind == "tampered payload":
        return _tampered(server, claims)
    raise AssertionError(kind)


BAD_TOKENS = ["expired", "not yet valid", "wrong aud", "wrong iss", "no exp", "alg none", "HS384 with the public key",
              "unknown kid", "known kid, another key", "tampered payload"]


def test_the_forged_tokens_differ_from_a_good_one_only_where_they_say(server, mongo, good_claims):
    # The same claims, signed the same way, are accepted: each bad token below is refused for its one fault.
    assert call(server, _signed(mongo, good_claims)).status_code == 200


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_is_401_invalid_token_and_nothing_is_done(server, mongo, good_claims, kind):
    token = _bad_token(kind, server, mongo, good_claims)
    refused_as_invalid_token(call(server, token))
    before = stored_counts(mongo)
    refused_as_invalid_token(call(server, token, method="POST", path="/PractitionerRole", body=fresh_role()))
    assert stored_counts(mongo) == before


@pytest.fixture(scope="module")
def other_server(tmp_path_factory) -> t.Iterator[Server]:
    """Another server, with its own embedded database: its own signing key and clients."""
    running = start_server(tmp_path_factory.mktemp("other-server"), WEB_CONCURRENCY="1")
    yield running
    running.stop()


def test_a_token_of_another_server_is_401(server, mongo, other_server):
    theirs = other_server.token()
    assert call(other_server, theirs).status_code in (200, 404)  # good there
    before = stored_counts(mongo)
    refused_as_invalid_token(call(server, theirs, method="POST", path="/PractitionerRole", body=fresh_role()))
    assert stored_counts(mongo) == before


def test_a_token_of_one_client_with_the_key_of_another_is_401(server, mongo):
    a, b = register_client(mongo, "tokens: A"), register_client(mongo, "tokens: B")
    before = stored_counts(mongo)
    refused_as_invalid_token(call(server, server.token(credentials=a), b, "POST", "/PractitionerRole", fresh_role()))
    assert stored_counts(mongo) == before


# --- client assertions the token endpoint must refuse (RFC 7523 §3, RFC 6749 §5.2) --------------------

def assertion(credentials: ClientCredentials, token_url: str, *, key: t.Any = None, kid: str | None = None,
              **claims: t.Any) -> str:
    now = int(time.time())
    body = {"iss": credentials.client_id, "sub": credentials.client_id, "aud": token_url, "iat": now, "exp": now + 60,
            "jti": str(uuid.uuid4()), **claims}
    signing = key if key is not None else jwt.PyJWK(credentials.private_jwk).key
    return jwt.encode(body, signing, algorithm="ES384", headers={"kid": kid or credentials.private_jwk["kid"]})


def ask(token_url: str, client_assertion: str, scope: str = HPI_SCOPE_PREFIX + "PractitionerRole.r") -> requests.Response:
    return requests.post(token_url, data={"grant_type": "client_credentials", "scope": scope,
                                          "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion},
                         timeout=30)


def invalid_client(response: requests.Response) -> None:
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["Cache-Control"] == "no-store"
    assert "access_token" not in response.json()


def test_a_good_assertion_made_with_pyjwt_works_once(server, discovery):
    url = discovery["token_endpoint"]
    made = assertion(server.credentials, url)
    first = ask(url, made)
    assert first.status_code == 200 and first.json()["token_type"].lower() == "bearer"
    invalid_client(ask(url, made))  # the same jti again


@pytest.mark.parametrize("kind", ["exp too far ahead", "expired", "unregistered key", "registered kid, another key",
                                  "wrong aud", "iss is not sub", "unknown client", "no jti", "alg none"])
def test_a_bad_assertion_is_invalid_client(server, discovery, kind):
    url, creds = discovery["token_endpoint"], server.credentials
    now = int(time.time())
    made = {
        "exp too far ahead": lambda: assertion(creds, url, exp=now + 900),
        "expired": lambda: assertion(creds, url, iat=now - 600, exp=now - 300),
        "unregistered key": lambda: assertion(creds, url, key=jwt.PyJWK(new_client_key()).key, kid="unregistered"),
        "registered kid, another key": lambda: assertion(creds, url, key=jwt.PyJWK(new_client_key()).key),
        "wrong aud": lambda: assertion(creds, url, aud="https://elsewhere.example/token"),
        "iss is not sub": lambda: assertion(creds, url, sub="someone-else"),
        "unknown client": lambda: assertion(creds, url, iss="no-such-client", sub="no-such-client"),
        "no jti": lambda: jwt.encode({"iss": creds.client_id, "sub": creds.client_id, "aud": url, "exp": now + 60},
                                     jwt.PyJWK(creds.private_jwk).key, algorithm="ES384",
                                     headers={"kid": creds.private_jwk["kid"]}),
        "alg none": lambda: jwt.encode({"iss": creds.client_id, "sub": creds.client_id, "aud": url, "exp": now + 60,
                                        "jti": str(uuid.uuid4())}, None, algorithm="none",
                                       headers={"kid": creds.private_jwk["kid"]}),
    }[kind]()
    invalid_client(ask(url, made))


def test_a_revoked_client_gets_no_token(server, mongo, discovery):
    client = register_client(mongo, "tokens: revoked")
    assert ask(discovery["token_endpoint"], assertion(client, discovery["token_endpoint"])).status_code == 200
    ClientStore(mongo).revoke(client.client_id)
    invalid_client(ask(discovery["token_endpoint"], assertion(client, discovery["token_endpoint"])))
    with pytest.raises(OAuthError) as refused:
        fetch_token(server.base_url, client, ["PractitionerRole.r"])
    assert refused.value.error == "invalid_client"


def test_a_request_that_is_not_client_credentials_is_refused_in_oauths_words(discovery):
    url = discovery["token_endpoint"]
    wrong_grant = requests.post(url, data={"grant_type": "password", "username": "u", "password": "p"}, timeout=30)
    assert (wrong_grant.status_code, wrong_grant.json()["error"]) == (400, "unsupported_grant_type")
    as_json = requests.post(url, json={"grant_type": "client_credentials"}, timeout=30)
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
