"""Where the rate-limit counters live: in the server's own database, so that every worker on every
host counts against the same windows. Flask-Limiter and its ``limits`` library do the rest (limits
parsed, keys named, fixed windows, breaches found); this module is their storage.

:class:`WindowedMongoStorage` is the library's MongoDB storage, registered under a scheme of its own
(the library's documented way to customise a storage), with its increment replaced:

- The library's increment asks whether a window has ended with ``{"$lt": ["$expireAt", "$$NOW"]}``,
  which SecantusDB always answers false, so its windows would never end. This one compares with the
  app's clock instead, in one atomic ``find_one_and_update`` of the key's document.
- It is not an upsert. When several workers' first requests of a key upsert it at once, SecantusDB
  applies every increment but answers some of them with no document, so those requests could not
  know their own count (the cause of a rate-limit test failing now and then). The document is
  inserted by itself instead; of racing inserts one wins and the others count in its window.
- It returns the window's end with the count, so reporting the window after a request needs no
  further queries (the library reads both back: two more round trips per request).
- It takes counts in blocks (a lease): one increment of the shared count by ``b`` gives this process
  the ``b`` counts below the new total, which it then hands to its requests one by one without asking
  the database again, until they run out or the window ends. Each count is handed out once across
  every worker and host, and a request is admitted only with a count within the limit, so no more
  than the limit are ever admitted in a window. The cost is the other way: counts a process holds
  unused are lost to the window, so a key can be refused up to ``b - 1`` requests early per process
  (per thread that took a block at the same moment). ``b`` is 1/:data:`LEASE_SHARE` of the limit
  (0.1% of it refused early per such process at worst), at most :data:`LEASE_MAX`: limits under 2000
  (500/hour, the default) count exactly, a round trip per request, and 100000/hour takes one round
  trip per 64 requests. Blocks only pay where requests are many, and there they are a small share.

(Its sliding-window strategy uses aggregation that SecantusDB rejects, so only fixed windows are used.)
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import typing as t
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import MongoDBStorage
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .client import client_options

PREFIX = "windowed+"  # windowed+mongodb://…, windowed+mongodb+srv://…
COUNTERS = "rate_limit_counters"
WINDOWS = "rate_limit_windows"
STRATEGY = "fixed-window"
LEASE_SHARE = 1000  # a block is at most this fraction of the limit...
LEASE_MAX = 64  # ...and at most this many counts


def block_size(limit: int) -> int:
    """How many counts of a window of ``limit`` a process takes at once."""
    return max(1, min(LEASE_MAX, limit // LEASE_SHARE))


@dataclass
class _Lease:
    """Counts of one window this process took and has not handed out yet: ``next``..``last``."""

    next: int
    last: int
    end: float  # when the window ends (epoch seconds)


def parse_rate_limit(text: str) -> list[RateLimitItem]:
    """``500/hour``, ``10/second;500/hour``, ``1 per 3 seconds``...

    :raises ValueError: with a message fit for the operator.
    """
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{text!r} is not a rate limit such as 500/hour, 1 per 3 seconds or 10/second;500/hour "
                         "(second, minute, hour, day, month or year)")
    return items


class WindowedMongoStorage(MongoDBStorage):
    STORAGE_SCHEME = [PREFIX + scheme for scheme in MongoDBStorage.STORAGE_SCHEME]

    def __init__(self, uri: str, **options: t.Any) -> None:
        super().__init__(uri.removeprefix(PREFIX), **options)
        self._last = threading.local()
        self._leases: dict[str, list[_Lease]] = {}
        self._lock = threading.Lock()

    def _seen(self) -> dict[str, tuple[int | None, float]]:
        """Key → (count, window end) as this thread's last increment of it found them; the count is
        kept until read (the count after this request)."""
        if not hasattr(self._last, "seen") or len(self._last.seen) > 10_000:
            self._last.seen = {}
        return t.cast(dict[str, tuple[int | None, float]], self._last.seen)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """This request's count in the key's window: from a block this process holds, else from a new
        block taken from the shared count."""
        # limits names a window's key after its limit: ".../{amount}/{multiples}/{granularity}".
        block = block_size(int(key.rsplit("/", 3)[-3])) if amount == 1 else 1
        count, end = self._from_lease(key) if block > 1 else (None, 0.0)
        if count is None:
            taken = block * amount  # a request costing more than one takes its cost, unleased
            doc = self._increment(key, expiry, taken)
            while doc is None:  # no window yet (or the TTL monitor removed the ended one): open it
                try:
                    doc = self._open(key, expiry, taken)
                except DuplicateKeyError:  # another worker opened it first: count in its window (unless
                    doc = self._increment(key, expiry, taken)  # it was removed meanwhile: open it again)
            last, end = int(doc["count"]), doc["expireAt"].replace(tzinfo=dt.timezone.utc).timestamp()
            count = last - block + 1  # the block's first count; the whole cost's last when unleased
            if block > 1:
                self._lease(key, _Lease(count + 1, last, end))
        self._seen()[key] = (count, end)
        return count

    def _from_lease(self, key: str) -> tuple[int | None, float]:
        now = time.time()
        with self._lock:
            leases = self._leases.get(key, [])
            leases[:] = [lease for lease in leases if lease.next <= lease.last and now < lease.end]
            if not leases:
                return None, 0.0
            lease = leases[0]
            lease.next += 1
            return lease.next - 1, lease.end

    def _lease(self, key: str, lease: _Lease) -> None:
        with self._lock:
            if len(self._leases) > 10_000:  # keys of ended windows
                self._leases.clear()
            self._leases.setdefault(key, []).append(lease)

    def _increment(self, key: str, expiry: int, amount: int) -> dict[str, t.Any] | None:
        now = dt.datetime.now(dt.timezone.utc)
        ended = {"$lt": ["$expireAt", now]}
        return self.counters.find_one_and_update(
            {"_id": key},
            [{"$set": {
                "count": {"$cond": {"if": ended, "then": amount, "else": {"$add": ["$count", amount]}}},
                "expireAt": {"$cond": {"if": ended, "then": now + dt.timedelta(seconds=expiry), "else": "$expireAt"}},
            }}],
            projection=["count", "expireAt"], return_document=ReturnDocument.AFTER,
        )

    def _open(self, key: str, expiry: int, amount: int) -> dict[str, t.Any]:
        doc = {"_id": key, "count": amount, "expireAt": dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=expiry)}
        self.counters.insert_one(doc)
        return doc

    def get(self, key: str) -> int:
        count, end = self._seen().get(key, (None, 0.0))
        if count is None:
            return int(super().get(key))
        self._seen()[key] = (None, end)
        return count

    def get_expiry(self, key: str) -> float:
        _, end = self._seen().get(key, (None, 0.0))
        return end if end > time.time() else float(super().get_expiry(key))

    def __del__(self) -> None:
        # The library's closes the client, connecting first if it never did; at interpreter exit with
        # the database gone that waits on threads that can no longer start. The process's end closes it.
        pass


def storage_uri(mongodb_uri: str) -> str:
    return PREFIX + mongodb_uri


def storage_options(database: str, timeout_ms: int) -> dict[str, t.Any]:
    """What the storage needs besides the connection string: our database and collections, the
    options of the server's own client (so an outage is a quick 503, as elsewhere), and its errors
    wrapped in ``limits.errors.StorageError`` so that they can be told from a bug."""
    return {"database_name": database, "counter_collection_name": COUNTERS, "window_collection_name": WINDOWS,
            "wrap_exceptions": True, **client_options(timeout_ms, "fhir-server-rate-limits")}
