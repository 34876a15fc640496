"""Authentication the HPI way (SPEC.md §6): an ``x-api-key`` the server knows (else 403 "Forbidden")
and a ``userid`` naming the person behind the request (else 401). ``/metadata`` is open to all."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, request

from ..outcome import Msg, RequestRejected, issue
from ..store.api_keys import ApiKeyStore, digest

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"metadata.capability_statement_view"}


class KeyCache:
    """Keys this process has recently found active, so that most requests skip the key lookup.

    Only good news is kept, and only for ``seconds``: a revoked key stops working within that time.
    """

    def __init__(self, keys: ApiKeyStore, seconds: int) -> None:
        self.keys = keys
        self.seconds = seconds
        self._until: dict[str, float] = {}

    def is_active(self, key: str) -> bool:
        now = time.monotonic()
        hashed = digest(key)
        if self._until.get(hashed, 0.0) > now:
            return True
        if not self.keys.is_active(key):
            return False
        if len(self._until) > 10_000:
            self._until.clear()
        self._until[hashed] = now + self.seconds
        return True


@bp.before_app_request
def authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    key = request.headers.get("x-api-key")
    if not key or not current_app.extensions["api_key_cache"].is_active(key):
        raise RequestRejected(issue(Msg.FORBIDDEN))
    if not request.headers.get("userid"):
        raise RequestRejected(issue(Msg.MISSING_USERID))
