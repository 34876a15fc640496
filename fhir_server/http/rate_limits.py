"""Rate limits per API key on every authenticated route, FHIR and plain-JSON alike (Flask-Limiter).

A key's limit is its own (``fhir-server api-key limit``), else ``RATE_LIMIT``; requests are counted in
fixed windows stored in the database (:mod:`..store.rate_limits`), so all workers on all hosts share
them. Every counted response reports its window in the headers of the IETF draft
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Limit``, ``RateLimit-Remaining``,
``RateLimit-Reset`` (seconds) and ``RateLimit-Policy``. Past the limit, a request is answered 429
with ``Retry-After`` before any work is done (see :mod:`.errors`).

Every request with a valid key counts, whatever its answer. A batch or transaction Bundle counts once,
as any request, and each of its entries that runs counts once more, as if sent alone; a Bundle refused
as a whole (malformed, too many entries) costs one. The lookups an entry makes for its conditional
references are part of it and not counted again, nor are the entries of a transaction run again at the
database's request. Requests without a valid key are refused first and not counted. With several
limits (``10/second;500/hour``) all are counted; the window reported is the exceeded one that ends
last (the wait before any request can succeed), else the one with the fewest requests left.
"""

from __future__ import annotations

import functools
import math
import time
import typing as t
from dataclasses import dataclass, replace

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from limits.errors import StorageError

from ..config import Settings
from ..store.rate_limits import STRATEGY, parse_rate_limit, storage_options, storage_uri

# Set in the WSGI environ of a request a Bundle makes that is not counted (see .bundle): a conditional
# reference's lookup, or an entry of a transaction the database asked to run again.
BUNDLE_LOOKUP = "fhir_server.bundle_lookup"
_WINDOW = "fhir_server.rate_window"


@dataclass(frozen=True)
class Window:
    """Where the caller stands: in the window of the limit it is closest to, or has exceeded."""

    limit: str  # "500 per 1 hour"
    total: int
    remaining: int
    reset: int  # seconds until the window starts again
    policy: str  # every limit of the caller, as RateLimit-Policy states them: "10;w=1, 500;w=3600"

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.total), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset), "RateLimit-Policy": self.policy}


def install(app: Flask, settings: Settings) -> None:
    """Count every request that names a known key. Runs after the key is checked (which names the
    caller) and before anything else is done with the request."""
    parse_rate_limit(settings.rate_limit)  # a bad default stops start-up, not a request
    limiter = Limiter(
        _caller, application_limits=[_limit_of_caller], strategy=STRATEGY, headers_enabled=False,
        fail_on_first_breach=False,  # every limit counts every request
        request_identifier=lambda: request.endpoint or "unrouted",  # a 404 or 405 counts too
        storage_uri=storage_uri(settings.mongodb_uri), storage_options=storage_options(settings.database, settings.db_timeout_ms),
    )
    limiter.request_filter(_not_counted)
    limiter.init_app(app)
    app.extensions["rate_limiter"] = limiter
    app.after_request(_report_window)


def current_window() -> Window | None:
    """The caller's window after this request, or None if the request is not counted (or the counter
    cannot be read now: the request itself has been counted and done, so it is not failed for that).
    Read once per request, then kept with the request (not in ``g``, which a Bundle's entries share)."""
    if _WINDOW not in request.environ:
        try:
            request.environ[_WINDOW] = _window(current_app.extensions["rate_limiter"].current_limits)
        except StorageError:
            request.environ[_WINDOW] = None
    return t.cast(Window | None, request.environ[_WINDOW])


def _window(limits: list[RequestLimit]) -> Window | None:
    if not limits:
        return None
    now = time.time()
    windows = [(limit.breached, Window(str(limit.limit), limit.limit.amount, max(0, limit.remaining),
                                       max(0, math.ceil(limit.window.reset_time - now)), "")) for limit in limits]
    _, closest = min(windows, key=lambda bw: (not bw[0], bw[1].remaining, -bw[1].reset))
    policy = ", ".join(f"{limit.limit.amount};w={limit.limit.get_expiry()}" for limit in limits)
    return replace(closest, policy=policy)


def _caller() -> str:
    return str(g.api_key.key_id)


def _limit_of_caller() -> str:
    own = g.api_key.rate_limit
    usable = isinstance(own, str) and _is_rate_limit(own, g.api_key.key_id)
    return str(own if usable else current_app.extensions["settings"].rate_limit)


@functools.lru_cache(maxsize=256)
def _is_rate_limit(text: str, key_id: str) -> bool:
    """Whether a stored limit can be used (a database edited by hand may hold anything); said once."""
    try:
        return bool(parse_rate_limit(text))
    except ValueError:
        current_app.logger.warning("API key %s has an unusable rate limit %r; RATE_LIMIT applies", key_id, text)
        return False


def _not_counted() -> bool:
    return "api_key" not in g or bool(request.environ.get(BUNDLE_LOOKUP))


def _report_window(response: Response) -> Response:
    window = current_window()
    if window is not None:
        response.headers.update(window.headers())
    return response
