"""Authentication. FHIR routes follow the HPI (SPEC.md §6): an ``x-api-key`` the server knows (else 403
"Forbidden") and a ``userid`` naming the person behind the request (else 401). The plain-JSON API
asks only for the key, as its clients expect: 401 without one, 403 for one the server does not know.
``/metadata`` and ``/openapi.json`` are open to all. The caller's key is left in ``g.api_key`` for the rate limits."""

from __future__ import annotations

import time

from flask import current_app, g, request

from ..outcome import Msg, RequestRejected, issue
from ..store.api_keys import ApiKey, ApiKeyStore, digest
from .envelope import in_plain_api

PUBLIC_ENDPOINTS = {"metadata.capability_statement_view", "openapi.openapi_view"}


class KeyCache:
    """Keys this process has recently found active, so that most requests skip the key lookup.

    Only good news is kept, and only for ``seconds``: a revoked key stops working, and a changed
    rate limit applies, within that time.
    """

    def __init__(self, keys: ApiKeyStore, seconds: int) -> None:
        self.keys = keys
        self.seconds = seconds
        self._found: dict[str, tuple[float, ApiKey]] = {}

    def find(self, key: str) -> ApiKey | None:
        now = time.monotonic()
        hashed = digest(key)
        until, found = self._found.get(hashed, (0.0, None))
        if until > now:
            return found
        found = self.keys.find_active(key)
        if found is None:
            return None
        if len(self._found) > 10_000:
            self._found.clear()
        self._found[hashed] = (now + self.seconds, found)
        return found


def identify_caller() -> None:
    """Runs before every request but the public ones': the key, which the rate limits then count against."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    plain = in_plain_api()
    key = request.headers.get("x-api-key")
    if not key and plain:
        raise RequestRejected(issue(Msg.API_KEY_MISSING))
    found = current_app.extensions["api_key_cache"].find(key) if key else None
    if found is None:
        raise RequestRejected(issue(Msg.API_KEY_UNKNOWN if plain else Msg.FORBIDDEN))
    g.api_key = found


def require_userid() -> None:
    """Runs after the rate limits: a request without a userid still counts against its key."""
    if "api_key" in g and not in_plain_api() and not request.headers.get("userid"):
        raise RequestRejected(issue(Msg.MISSING_USERID))
