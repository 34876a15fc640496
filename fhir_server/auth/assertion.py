"""The client's side of SMART Backend Services, for this server's own tools (``fhir-server token``, the
conformance runner, the benchmark, the reliability suite) and the development client: a key pair,
a signed client assertion for the token endpoint (PyJWT does the signing), and :class:`Caller`, which
keeps a current token for a client's requests."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
import typing as t
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from .tokens import ASSERTION_TYPE

CLIENT_ALGORITHM = "ES384"


def new_client_key() -> dict[str, t.Any]:
    """A new ES384 private JWK with a ``kid``; :func:`public_jwks` gives what to register."""
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": secrets.token_urlsafe(8), "alg": CLIENT_ALGORITHM}


def public_jwks(private_jwk: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"keys": [{k: v for k, v in private_jwk.items() if k != "d"}]}


def client_assertion(client_id: str, private_jwk: dict[str, t.Any], token_url: str, seconds: int = 60) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + seconds, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, jwt.PyJWK(private_jwk).key, algorithm=private_jwk.get("alg", CLIENT_ALGORITHM),
                      headers={"kid": private_jwk["kid"]})


def token_request(client_id: str, private_jwk: dict[str, t.Any], token_url: str, scope: str) -> dict[str, str]:
    """The form a client posts to the token endpoint."""
    return {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(client_id, private_jwk, token_url)}


class ClientCredentials(t.NamedTuple):
    """What a client keeps: its id, its API key and its private key (the development client's file)."""

    client_id: str
    api_key: str
    private_jwk: dict[str, t.Any]

    def save(self, path: Path) -> None:
        path.touch(0o600)
        path.chmod(0o600)
        path.write_text(json.dumps({"client_id": self.client_id, "api_key": self.api_key, "key": self.private_jwk}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ClientCredentials:
        doc = json.loads(path.read_text())
        return cls(doc["client_id"], doc["api_key"], doc["key"])


class TokenRefused(RuntimeError):
    """The token endpoint answered, but with no token."""


def fetch_token(base_url: str, credentials: ClientCredentials, scope: str | None = None, timeout: float = 30) -> str:
    """An access token from the server at ``base_url`` over HTTP, discovered as SMART says; by default
    with every scope the server offers (it grants those the client holds)."""
    return str(request_token(base_url, credentials, scope, timeout)["access_token"])


def request_token(base_url: str, credentials: ClientCredentials, scope: str | None = None,
                  timeout: float = 30) -> dict[str, t.Any]:
    """The token endpoint's whole answer (``access_token``, ``expires_in``, ``scope``), as :func:`fetch_token`.

    :raises requests.RequestException: no answer, or discovery failed.
    :raises TokenRefused: the token endpoint refused.
    """
    import requests  # here: the server itself never calls out

    config = requests.get(base_url.rstrip("/") + "/.well-known/smart-configuration", timeout=timeout)
    config.raise_for_status()
    found = config.json()
    form = token_request(credentials.client_id, credentials.private_jwk, found["token_endpoint"],
                         scope if scope is not None else " ".join(found["scopes_supported"]))
    answer = requests.post(found["token_endpoint"], data=form, timeout=timeout)
    if answer.status_code != 200:
        raise TokenRefused(f"the token endpoint answered {answer.status_code}: {answer.text}")
    return t.cast(dict[str, t.Any], answer.json())


class Caller:
    """What a client sends with every FHIR request to be let in (SPEC.md §6): its API key and a current
    access token. Safe to share between threads.

    :meth:`of_client` asks the token endpoint for a token at the first use, and again once the token is
    within ``REFRESH_SECONDS`` of its expiry (TOKEN_SECONDS, 5 min by default), so that a long run never
    sends an expired one; :meth:`fixed` sends the token it is given for as long as it is used.
    """

    REFRESH_SECONDS = 30

    def __init__(self, api_key: str, fetch: t.Callable[[], dict[str, t.Any]] | None = None, token: str | None = None) -> None:
        self.api_key = api_key
        self._fetch = fetch
        self._token = token
        self._renew_at = math.inf if fetch is None else 0.0
        self._lock = threading.Lock()

    @classmethod
    def fixed(cls, api_key: str, token: str) -> Caller:
        return cls(api_key, token=token)

    @classmethod
    def of_client(cls, base_url: str, credentials: ClientCredentials, scope: str | None = None) -> Caller:
        return cls(credentials.api_key, lambda: request_token(base_url, credentials, scope))

    def token(self) -> str:
        """The token to send now.

        :raises requests.RequestException, TokenRefused: a new one was needed and none was given.
        """
        with self._lock:
            if self._fetch is not None and time.monotonic() >= self._renew_at:
                answer = self._fetch()
                self._token = str(answer["access_token"])
                lifetime = float(answer.get("expires_in", 60))
                self._renew_at = time.monotonic() + max(lifetime - self.REFRESH_SECONDS, lifetime / 2)
            assert self._token is not None
            return self._token

    def headers(self) -> dict[str, str]:
        """``Authorization`` and ``x-api-key`` (``userid`` and ``User-Agent`` are the sender's)."""
        return {"Authorization": f"Bearer {self.token()}", "x-api-key": self.api_key}
