"""Who is calling, and whether they may: the HPI's three checks (SPEC.md §6), in this order.

1. ``x-api-key``: a key the server issued with a client that is not revoked, else 403 "Forbidden".
   The rate limits then count the request against the key.
2. ``Authorization: Bearer``: an access token of this server (see :mod:`..auth.tokens`), issued to the
   key's client, else 401 "Unauthorized" with ``WWW-Authenticate: Bearer`` saying why.
3. ``userid``: the person behind the request, else 401 (missing or not printable); ``User-Agent``, else 400.

Then the route's scope (:func:`..auth.authorize`), else 403 naming it. The caller is left in
``g.access``: the token's scopes that the client still holds, so that taking a scope from a client
takes effect within ``API_KEY_CACHE_SECONDS``, not at the token's expiry.

The plain-JSON API keeps its own contract: the key alone (401 without one, 403 for one the server does
not know), with its client's scopes. ``/metadata``, ``/openapi.json`` and the OAuth endpoints are open
to all.
"""

from __future__ import annotations

import threading
import time

from flask import current_app, g, request

from ..auth import Access, Claims, InvalidToken, authorize
from ..outcome import Msg, RequestRejected, issue
from ..store import Store
from ..store.api_keys import ApiKey, digest
from ..store.clients import Client
from .cors import is_preflight
from .envelope import in_plain_api

PUBLIC_ENDPOINTS = {"metadata.capability_statement_view", "openapi.openapi_view", "oauth.smart_configuration",
                    "oauth.token", "oauth.jwks", "probes.healthz", "probes.readyz", "metrics.metrics_view"}
MAX_USERID = 64


class CallerCache:
    """Keys this process has recently found active, with their clients, so that most requests skip the
    lookups.

    Only good news is kept, and only for ``seconds``: a revoked key or client stops working, and a
    changed rate limit or scope applies, within that time.
    """

    def __init__(self, store: Store, seconds: int) -> None:
        self.store = store
        self.seconds = seconds
        self._found: dict[str, tuple[float, ApiKey, Client]] = {}
        self._lock = threading.Lock()
        self._renewing: dict[str, threading.Lock] = {}

    def find(self, key: str) -> tuple[ApiKey, Client] | None:
        hashed = digest(key)
        cached = self._fresh(hashed)
        if cached is not None:
            return cached
        if hashed not in self._found:
            return self._look_up(key, hashed)
        # A key in use whose entry is due: one thread looks it up again, the others of this process
        # wait for its answer rather than all ask at once.
        with self._lock:
            renewing = self._renewing.setdefault(hashed, threading.Lock())
        with renewing:
            try:
                return self._fresh(hashed) or self._look_up(key, hashed)
            finally:
                with self._lock:
                    self._renewing.pop(hashed, None)

    def _fresh(self, hashed: str) -> tuple[ApiKey, Client] | None:
        cached = self._found.get(hashed)
        return (cached[1], cached[2]) if cached and cached[0] > time.monotonic() else None

    def _look_up(self, key: str, hashed: str) -> tuple[ApiKey, Client] | None:
        now = time.monotonic()
        found = self.store.api_keys.find_active(key)
        client = self.store.clients.get(found.client_id) if found and found.client_id else None
        if found is None or client is None or client.revoked:
            self._found.pop(hashed, None)
            return None
        if len(self._found) > 10_000:
            self._found.clear()
        self._found[hashed] = (now + self.seconds, found, client)
        return found, client


def identify_caller() -> None:
    """Runs before every request but the public ones': the key, which the rate limits then count against."""
    if request.endpoint in PUBLIC_ENDPOINTS or is_preflight():
        return  # a browser's preflight carries no credentials (.cors): it is let by, uncounted
    plain = in_plain_api()
    key = request.headers.get("x-api-key")
    if not key and plain:
        raise RequestRejected(issue(Msg.API_KEY_MISSING))
    found = current_app.extensions["callers"].find(key) if key else None
    if found is None:
        raise RequestRejected(issue(Msg.API_KEY_UNKNOWN if plain else Msg.FORBIDDEN))
    g.api_key, g.client = found


# What RFC 6750 §3 lets error_description hold. PyJWT's reasons may quote the token itself (its "crit"
# values): a new line there broke the answer, so anything else is shown as "?", and the text is bounded.
_DESCRIPTION_CHARS = frozenset(map(chr, range(0x20, 0x7F))) - {'"', "\\"}
MAX_DESCRIPTION = 200


def _unauthorized(error: str, description: str) -> RequestRejected:
    shown = "".join(c if c in _DESCRIPTION_CHARS else "?" for c in description[:MAX_DESCRIPTION])
    return RequestRejected(issue(Msg.UNAUTHORIZED), {
        "WWW-Authenticate": f'Bearer realm="fhir-server", error="{error}", error_description="{shown}"'})


def _token_scopes(client: Client) -> frozenset[str]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("invalid_request", "an access token is required: Authorization: Bearer <token>")
    try:
        claims: Claims = current_app.extensions["tokens"].verify(token.strip())
    except InvalidToken as e:
        raise _unauthorized("invalid_token", str(e)) from None
    if claims.client_id != client.client_id:
        raise _unauthorized("invalid_token", "the access token was issued to another client than the x-api-key's")
    return claims.scopes


def _userid() -> str:
    userid = request.headers.get("userid")
    if not userid:
        raise RequestRejected(issue(Msg.MISSING_USERID))
    if len(userid) > MAX_USERID or not userid.isascii() or not userid.isprintable() or userid != userid.strip():
        raise RequestRejected(issue(Msg.INVALID_USERID, limit=MAX_USERID))
    return userid


def authenticate() -> None:
    """Runs after the rate limits (a request refused here still counts against its key): the token,
    userid and User-Agent, then the route's scope."""
    if "api_key" not in g:
        return
    client: Client = g.client
    if in_plain_api():
        scopes, userid = client.scopes, None
    else:
        scopes = _token_scopes(client) & client.scopes
        userid = _userid()
        if not request.headers.get("User-Agent"):
            raise RequestRejected(issue(Msg.USER_AGENT_MISSING))
    g.access = Access(scopes, client.client_id, client.name, g.api_key.key_id, userid,
                      current_app.extensions["settings"].scope_prefix)
    authorize(g.access, request.endpoint, request.view_args or {}, request.args.items(multi=True))
