"""How the server's MongoDB clients connect: one set of options for each client it opens, and the
durability and consistency every write and every deciding read asks for, stated here rather than
left to the cluster's defaults or the connection string."""

from __future__ import annotations

import typing as t

from pymongo import ReadPreference, WriteConcern
from pymongo.collection import Collection
from pymongo.read_concern import ReadConcern

from .codecs import TYPE_REGISTRY
from .monitoring import LISTENER


def client_options(timeout_ms: int, appname: str) -> dict[str, t.Any]:
    # Fail fast when the database is gone (503, not a hang). Each request's own deadline
    # (.deadline, the same DB_TIMEOUT_MS) bounds everything it does; these bound work outside requests.
    return {"serverSelectionTimeoutMS": timeout_ms, "connectTimeoutMS": timeout_ms,
            "socketTimeoutMS": max(10_000, 5 * timeout_ms), "tz_aware": True, "appname": appname,
            "type_registry": TYPE_REGISTRY,
            "event_listeners": [LISTENER]}  # metrics of every command, and each request's count of them


def durable_write_concern(configured: WriteConcern) -> WriteConcern:
    """``w: "majority"`` with ``j: true``, or what ``configured`` (the URI's) asks if it is stronger.

    A write acknowledged by a majority survives a failover, and journaled survives a crash (kill -9
    answered creates that were then lost, `make reliability`). The URI may name a custom write
    concern tag (a string ``w`` other than majority), which is kept: it cannot be compared with
    majority, and an operator who names one means it. A numeric ``w`` (1, 2, ...) is replaced: how it
    compares with a majority depends on the replica set's size, which the server does not assume.
    """
    w = configured.document.get("w")
    keep_tag = isinstance(w, str) and w != "majority"
    return WriteConcern(w=w if keep_tag else "majority", j=True)


def deciding(collection: Collection[t.Any]) -> Collection[t.Any]:
    """``collection`` for reads that decide a write (the version an If-Match names, reservations,
    identifier holders, references of a create): from the primary, majority-committed, whatever the
    URI's read preference. Other reads follow the URI, so an operator may send them to secondaries."""
    return collection.with_options(read_preference=ReadPreference.PRIMARY, read_concern=ReadConcern("majority"))


def on_primary(collection: Collection[t.Any]) -> Collection[t.Any]:
    """``collection`` for reads of what the primary has applied, majority-committed or not (read
    concern local): a write whose answer was lost may be there and not yet on a majority, so a
    majority read alone cannot tell "not stored" from "stored, not yet replicated"."""
    return collection.with_options(read_preference=ReadPreference.PRIMARY, read_concern=ReadConcern("local"))
