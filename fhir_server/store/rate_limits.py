"""Where the rate-limit counters live: in the server's own database, so that every worker on every
host counts against the same windows. The counting is the ``limits`` library's (behind Flask-Limiter):
a fixed window per key and limit, one atomic ``find_one_and_update`` per request, which SecantusDB and
MongoDB both run. (Its sliding-window strategy uses aggregation that SecantusDB rejects.)

:class:`WindowedMongoStorage` is that library's MongoDB storage, registered under a scheme of its own
(the library's documented way to customise a storage), with one change: reporting the window after
a request costs no further round trips. The library reads the count and the window's end back from
the database after counting (two more queries per request); here the count is the one the increment
just returned, and a window's end, which cannot change until it has passed, is remembered until then.
"""

from __future__ import annotations

import time
import typing as t

from limits.storage import MongoDBStorage

PREFIX = "windowed+"  # windowed+mongodb://…, windowed+mongodb+srv://…
COUNTERS = "rate_limit_counters"
WINDOWS = "rate_limit_windows"
STRATEGY = "fixed-window"


class WindowedMongoStorage(MongoDBStorage):
    STORAGE_SCHEME = [PREFIX + scheme for scheme in MongoDBStorage.STORAGE_SCHEME]

    def __init__(self, uri: str, **options: t.Any) -> None:
        super().__init__(uri.removeprefix(PREFIX), **options)
        self._counted: dict[str, int] = {}  # key → the count its last increment returned, until read
        self._window_ends: dict[str, float] = {}

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        count = super().incr(key, expiry, amount)
        self._counted[key] = count
        return count

    def get(self, key: str) -> int:
        if key in self._counted:
            return self._counted.pop(key)
        return super().get(key)

    def get_expiry(self, key: str) -> float:
        end = self._window_ends.get(key, 0.0)
        if end > time.time():
            return end
        end = super().get_expiry(key)
        if len(self._window_ends) > 10_000:
            self._window_ends.clear()
        self._window_ends[key] = end
        return end

    def __del__(self) -> None:
        # The library's closes the client, connecting first if it never did; at interpreter exit with
        # the database gone that waits on threads that can no longer start. The process's end closes it.
        pass


def storage_uri(mongodb_uri: str) -> str:
    return PREFIX + mongodb_uri


def storage_options(database: str, timeout_ms: int) -> dict[str, t.Any]:
    """What the storage needs besides the connection string: our database and collections, our
    timeouts (so an outage is a quick 503, as elsewhere), and its errors wrapped in
    ``limits.errors.StorageError`` so that they can be told from a bug."""
    return {
        "database_name": database, "counter_collection_name": COUNTERS, "window_collection_name": WINDOWS,
        "wrap_exceptions": True, "appname": "fhir-server-rate-limits",
        "serverSelectionTimeoutMS": timeout_ms, "connectTimeoutMS": timeout_ms, "socketTimeoutMS": max(10_000, 5 * timeout_ms),
    }
