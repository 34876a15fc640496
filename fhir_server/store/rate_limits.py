"""Where the rate-limit counters live: in the server's own database, so that every worker on every
host counts against the same windows. Flask-Limiter and its ``limits`` library do the rest (limits
parsed, keys named, fixed windows, breaches found); this module is their storage.

:class:`WindowedMongoStorage` is the library's MongoDB storage, registered under a scheme of its own
(the library's documented way to customise a storage), with its increment replaced:

- The library's increment asks whether a window has ended with ``{"$lt": ["$expireAt", "$$NOW"]}``,
  which SecantusDB always answers false, so its windows would never end. This one compares with the
  app's clock instead; it is otherwise the same single atomic ``find_one_and_update``: an upsert, so
  of a key's first requests on several workers one starts the window and the others count in it.
- It returns the window's end with the count, so reporting the window after a request needs no
  further queries (the library reads both back: two more round trips per request).

(Its sliding-window strategy uses aggregation that SecantusDB rejects, so only fixed windows are used.)
"""

from __future__ import annotations

import datetime as dt
import typing as t

from limits.storage import MongoDBStorage
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

PREFIX = "windowed+"  # windowed+mongodb://…, windowed+mongodb+srv://…
COUNTERS = "rate_limit_counters"
WINDOWS = "rate_limit_windows"
STRATEGY = "fixed-window"


class WindowedMongoStorage(MongoDBStorage):
    STORAGE_SCHEME = [PREFIX + scheme for scheme in MongoDBStorage.STORAGE_SCHEME]

    def __init__(self, uri: str, **options: t.Any) -> None:
        super().__init__(uri.removeprefix(PREFIX), **options)
        # What this process's last increment of each key returned: the count until it is read (the
        # count after this request), the window's end for as long as it lasts.
        self._counted: dict[str, int] = {}
        self._window_ends: dict[str, float] = {}

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        try:
            doc = self._increment(key, expiry, amount)
        except DuplicateKeyError:  # another process's upsert of a new key won; the document exists now
            doc = self._increment(key, expiry, amount)
        if len(self._window_ends) > 10_000:
            self._window_ends.clear()
        self._window_ends[key] = doc["expireAt"].replace(tzinfo=dt.timezone.utc).timestamp()
        self._counted[key] = int(doc["count"])
        return self._counted[key]

    def _increment(self, key: str, expiry: int, amount: int) -> dict[str, t.Any]:
        now = dt.datetime.now(dt.timezone.utc)
        ended = {"$lt": ["$expireAt", now]}  # also true for a new key, which has no expireAt
        return t.cast(dict[str, t.Any], self.counters.find_one_and_update(
            {"_id": key},
            [{"$set": {
                "count": {"$cond": {"if": ended, "then": amount, "else": {"$add": ["$count", amount]}}},
                "expireAt": {"$cond": {"if": ended, "then": now + dt.timedelta(seconds=expiry), "else": "$expireAt"}},
            }}],
            upsert=True, projection=["count", "expireAt"], return_document=ReturnDocument.AFTER,
        ))

    def get(self, key: str) -> int:
        if key in self._counted:
            return self._counted.pop(key)
        return super().get(key)

    def get_expiry(self, key: str) -> float:
        return self._window_ends.get(key) or super().get_expiry(key)

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
