"""Access tokens for SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html).

A client authenticates with a JWT it signed with one of its registered keys (RFC 7523,
``private_key_jwt``): ``iss`` = ``sub`` = its client_id, ``aud`` = the token URL, ``exp`` at most five
minutes ahead, a ``jti`` never used before. It gets back a bearer token, a JWT the server signs with
its own key (ES384, with a ``kid``), holding the scopes granted: those asked for that the client holds.

Tokens are verified with the server's public keys alone, so any worker on any host verifies them
without a database call; each worker reads the key set again every ``KEY_REFRESH_SECONDS``, which is
how a rotated key (``fhir-server signing-key rotate``) reaches all of them. A superseded key verifies
what it signed until those tokens have expired. All JOSE work is PyJWT's: nothing here parses a JWT or
checks a signature itself.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
import typing as t
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..store.clients import Client, ClientStore
from .scopes import parse

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ALGORITHMS = ["RS384", "ES384"]  # what SMART Backend Services asks servers to accept
TOKEN_ALGORITHM = "ES384"
MAX_ASSERTION_SECONDS = 300
LEEWAY_SECONDS = 30  # clock difference tolerated between hosts
KEY_REFRESH_SECONDS = 10
_CACHE_LIMIT = 10_000


class OAuthError(Exception):
    """An error of the token endpoint, answered as RFC 6749 §5.2 says."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description

    @property
    def status(self) -> int:
        return 401 if self.error == "invalid_client" else 400


class InvalidToken(Exception):
    """A bearer token that is not one of this server's, or no longer valid; the message says why."""


@dataclass(frozen=True)
class Claims:
    client_id: str
    scopes: frozenset[str]
    expires: float


def check_jwks(jwks: t.Any) -> dict[str, t.Any]:
    """A client's public JWK Set as registered: RS384 (RSA, 2048 bits or more) and ES384 (EC P-384)
    keys, each with a ``kid``, no private parts.

    :raises ValueError: it is not one.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError('a JWK Set is a JSON object {"keys": [...]} with at least one key')
    kids = set()
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict) or not jwk.get("kid"):
            raise ValueError("every key needs a kid")
        if "d" in jwk:
            raise ValueError(f"key {jwk['kid']} holds private material: register the public key only")
        if jwk.get("kid") in kids:
            raise ValueError(f"two keys have kid {jwk['kid']}")
        kids.add(jwk["kid"])
        try:
            key = jwt.PyJWK(jwk)
        except jwt.exceptions.PyJWTError as e:
            raise ValueError(f"key {jwk['kid']}: {e}") from None
        if jwk.get("kty") == "RSA":
            if key.key.key_size < 2048 or jwk.get("alg", "RS384") != "RS384":
                raise ValueError(f"key {jwk['kid']}: RSA keys must have 2048 bits or more and alg RS384")
        elif jwk.get("kty") != "EC" or jwk.get("crv") != "P-384" or jwk.get("alg", "ES384") != "ES384":
            raise ValueError(f"key {jwk['kid']}: keys must be RSA (RS384) or EC P-384 (ES384)")
    return jwks


def new_signing_key() -> tuple[str, str]:
    """A new ES384 private key for tokens: (kid, PKCS#8 PEM)."""
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return secrets.token_urlsafe(12), pem.decode()


class Tokens:
    """Issues and verifies access tokens; one per process, shared by its threads."""

    def __init__(self, clients: ClientStore, *, issuer: str, lifetime: int, scope_prefix: str) -> None:
        self.clients = clients
        self.issuer = issuer
        self.lifetime = lifetime
        self.scope_prefix = scope_prefix
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self._keys: dict[str, t.Any] = {}  # kid -> private key
        self._current: str | None = None
        self._loaded: float | None = None
        self._verified: dict[str, Claims] = {}  # token -> its claims: a token is checked once per process

    # --- the server's keys ---------------------------------------------------------------------------

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        since = now - self._loaded if self._loaded is not None else float("inf")
        # An unknown kid reads the keys again, but at most once a second, however many requests bring one.
        if since < (1 if force else KEY_REFRESH_SECONDS):
            return
        # One thread reads them; the others go on with the keys they have (or, before any, or for a kid
        # they lack, wait for them).
        if not self._reading.acquire(blocking=self._loaded is None or force):
            return
        try:
            if self._loaded is None or time.monotonic() - self._loaded >= (1 if force else KEY_REFRESH_SECONDS):
                self._read_keys(now)
        finally:
            self._reading.release()

    def _read_keys(self, now: float) -> None:
        kept_after = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=self.lifetime + LEEWAY_SECONDS
                                                                     + 2 * KEY_REFRESH_SECONDS)
        found = self.clients.signing_keys(kept_after)
        keys = {k.kid: self._keys.get(k.kid) or serialization.load_pem_private_key(k.pem.encode(), None) for k in found}
        with self._lock:
            if not set(self._keys) <= set(keys):  # a key dropped takes the tokens it signed with it
                self._verified.clear()
            self._keys = keys
            self._current = next((k.kid for k in found if k.superseded is None), None)
            self._loaded = now

    def ensure_signing_key(self) -> None:
        """Make a first signing key if the database has none (at start-up, before workers fork)."""
        self._refresh(force=True)
        if self._current is None:
            self.clients.add_signing_key(*new_signing_key())
            self._loaded = None
            self._refresh()

    def public_jwks(self) -> dict[str, t.Any]:
        """The public keys tokens are verified with, for anyone who wants to verify them too."""
        self._refresh()
        out = []
        for kid, key in self._keys.items():
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            out.append({**jwk, "kid": kid, "use": "sig", "alg": TOKEN_ALGORITHM})
        return {"keys": out}

    # --- the token endpoint ----------------------------------------------------------------------------

    def grant(self, form: t.Mapping[str, str], token_url: str) -> dict[str, t.Any]:
        """Answer a client-credentials request (the form of the token endpoint).

        :raises OAuthError: the request, the client or the scopes are not acceptable.
        """
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError("invalid_request", f"a client_assertion of type {ASSERTION_TYPE} is required")
        if "scope" not in form:
            raise OAuthError("invalid_request", "scope is required")
        client = self.authenticate(form["client_assertion"], token_url)
        asked = set(form["scope"].split())
        granted = sorted(s for s in asked if s.startswith(self.scope_prefix) and s[len(self.scope_prefix):] in client.scopes)
        if not granted:
            raise OAuthError("invalid_scope", "none of the scopes asked for is granted to this client")
        return {"access_token": self.issue(client.client_id, granted), "token_type": "bearer",
                "expires_in": self.lifetime, "scope": " ".join(granted)}

    def authenticate(self, assertion: str, token_url: str) -> Client:
        """The client that signed ``assertion``, once it is checked and its ``jti`` recorded.

        :raises OAuthError: invalid_client, saying why.
        """
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.exceptions.PyJWTError as e:
            raise OAuthError("invalid_client", f"the client assertion is not a JWT: {e}") from None
        client_id = unverified.get("iss")
        client = self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None or client.revoked:
            raise OAuthError("invalid_client", "unknown or revoked client")
        jwk = next((k for k in client.jwks.get("keys", []) if k.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise OAuthError("invalid_client", f"the client has no key with kid {header.get('kid')!r}")
        # Only the key's own algorithm: PyJWT raises a TypeError, not one of its errors, for an alg whose
        # key type is not the key's (an EC key's kid with alg RS384).
        algorithm = "RS384" if jwk.get("kty") == "RSA" else "ES384"
        try:
            claims = jwt.decode(assertion, jwt.PyJWK(jwk).key, algorithms=[algorithm], audience=token_url,
                                issuer=client.client_id, leeway=LEEWAY_SECONDS,
                                options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.exceptions.PyJWTError as e:
            raise OAuthError("invalid_client", f"the client assertion is not valid: {e}") from None
        if claims["sub"] != client.client_id:
            raise OAuthError("invalid_client", "sub must be the client_id")
        if claims["exp"] > time.time() + MAX_ASSERTION_SECONDS + LEEWAY_SECONDS:
            raise OAuthError("invalid_client", f"exp may be at most {MAX_ASSERTION_SECONDS} s ahead")
        if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= 255:
            raise OAuthError("invalid_client", "jti must be a string of 1 to 255 characters")
        expires = dt.datetime.fromtimestamp(claims["exp"] + LEEWAY_SECONDS, dt.timezone.utc)
        if not self.clients.use_assertion(client.client_id, claims["jti"], expires):
            raise OAuthError("invalid_client", "this assertion's jti has been used before")
        return client

    def issue(self, client_id: str, scopes: t.Sequence[str]) -> str:
        """A signed access token for ``client_id`` with ``scopes`` (full names)."""
        self._refresh()
        if self._current is None:
            self.ensure_signing_key()
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.issuer, "sub": client_id, "client_id": client_id, "iat": now,
                  "nbf": now, "exp": now + self.lifetime, "jti": secrets.token_urlsafe(16), "scope": " ".join(scopes)}
        return jwt.encode(claims, self._keys[t.cast(str, self._current)], algorithm=TOKEN_ALGORITHM,
                          headers={"kid": self._current})

    # --- requests ------------------------------------------------------------------------------------

    def verify(self, token: str) -> Claims:
        """The claims of a valid access token of this server.

        :raises InvalidToken: it is not one, or has expired.
        """
        found = self._verified.get(token)
        if found is None:
            found = self._verify(token)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = found
        if found.expires + LEEWAY_SECONDS < time.time():
            raise InvalidToken("the access token has expired")
        return found

    def _verify(self, token: str) -> Claims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.exceptions.PyJWTError as e:
            raise InvalidToken(f"the access token is not a JWT: {e}") from None
        self._refresh()
        if kid not in self._keys:
            self._refresh(force=True)
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the access token was not signed by this server")
        try:
            claims = jwt.decode(token, key.public_key(), algorithms=[TOKEN_ALGORITHM], audience=self.issuer,
                                issuer=self.issuer, leeway=LEEWAY_SECONDS,
                                options={"require": ["iss", "aud", "sub", "exp", "nbf", "scope"]})
        except jwt.exceptions.PyJWTError as e:
            raise InvalidToken(f"the access token is not valid: {e}") from None
        try:
            scopes = parse(claims["scope"], self.scope_prefix)
        except (ValueError, AttributeError):
            raise InvalidToken("the access token's scopes are not this server's") from None
        return Claims(claims["sub"], scopes, float(claims["exp"]))
