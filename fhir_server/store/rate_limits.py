"""Where the rate-limit counters live: in the server's own database, so that every worker on every
host counts against the same windows. The counting itself is the ``limits`` library's (behind
Flask-Limiter): a fixed window per key, one atomic ``find_one_and_update`` per request, which
SecantusDB and MongoDB both run. Its sliding-window strategy uses aggregation that SecantusDB
rejects, so only fixed windows are offered.
"""

from __future__ import annotations

import typing as t

COUNTERS = "rate_limit_counters"
WINDOWS = "rate_limit_windows"
STRATEGY = "fixed-window"


def storage_options(database: str, timeout_ms: int) -> dict[str, t.Any]:
    """What the ``limits`` MongoDB storage needs besides the connection string: our database and
    collections, our timeouts (so an outage is a quick 503, as elsewhere), and its errors wrapped in
    ``limits.errors.StorageError`` so that they can be told from a bug."""
    return {
        "database_name": database, "counter_collection_name": COUNTERS, "window_collection_name": WINDOWS,
        "wrap_exceptions": True, "appname": "fhir-server-rate-limits",
        "serverSelectionTimeoutMS": timeout_ms, "connectTimeoutMS": timeout_ms, "socketTimeoutMS": max(10_000, 5 * timeout_ms),
    }
