"""How the server's MongoDB clients connect: one set of options for each client it opens."""

from __future__ import annotations

import typing as t

from .codecs import TYPE_REGISTRY


def client_options(timeout_ms: int, appname: str) -> dict[str, t.Any]:
    # Fail fast when the database is gone (503, not a hang), but give a slow write time to finish.
    return {"serverSelectionTimeoutMS": timeout_ms, "connectTimeoutMS": timeout_ms,
            "socketTimeoutMS": max(10_000, 5 * timeout_ms), "tz_aware": True, "appname": appname,
            "type_registry": TYPE_REGISTRY}
