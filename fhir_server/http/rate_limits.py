"""Rate limits per API key on every authenticated route, FHIR and plain-JSON alike (Flask-Limiter).

A key's limit is its own (``fhir-server api-key limit``), else ``RATE_LIMIT``; requests are counted in
fixed windows stored in the database (:mod:`..store.rate_limits`), so all workers on all hosts share
them. Every counted response reports its window in the headers of the IETF draft
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Limit``, ``RateLimit-Remaining``,
``RateLimit-Reset`` (seconds) and ``RateLimit-Policy``. Past the limit, a request is answered 429
with ``Retry-After`` before any work is done (see :mod:`.errors`).

What is not counted: requests without a valid key (they are refused first), and the entries of a
batch or transaction Bundle, which run inside the Bundle's own, counted, request.
"""

from __future__ import annotations

import math
import time
import typing as t
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.errors import StorageError

from ..config import Settings
from ..store.rate_limits import STRATEGY, storage_options, storage_uri

# Set in the WSGI environ of a Bundle entry's internal request (see .bundle).
BUNDLE_ENTRY = "fhir_server.bundle_entry"
_WINDOW = "fhir_server.rate_window"


@dataclass(frozen=True)
class Window:
    """Where the caller stands in its current window."""

    total: int
    remaining: int
    reset: int  # seconds until the window starts again
    length: int  # the window's length in seconds

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.total), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset), "RateLimit-Policy": f"{self.total};w={self.length}"}


def parse_rate_limit(text: str) -> list[RateLimitItem]:
    """``500/hour``, ``10/second;500/hour``, ``500 per hour``...

    :raises ValueError: with a message fit for the operator.
    """
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{text!r} is not a rate limit: write N/second, N/minute, N/hour or N/day (N ≥ 1), "
                         "several joined by ';'")
    return items


def install(app: Flask, settings: Settings) -> None:
    """Count every authenticated request; runs after authentication, which names the caller."""
    parse_rate_limit(settings.rate_limit)  # a bad default stops start-up, not a request
    limiter = Limiter(
        _caller, application_limits=[_limit_of_caller], strategy=STRATEGY, headers_enabled=False,
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
        limit = current_app.extensions["rate_limiter"].current_limit
        try:
            request.environ[_WINDOW] = None if limit is None else Window(
                limit.limit.amount, max(0, limit.remaining), max(0, math.ceil(limit.window.reset_time - time.time())),
                limit.limit.get_expiry(),
            )
        except StorageError:
            request.environ[_WINDOW] = None
    return t.cast(Window | None, request.environ[_WINDOW])


def _caller() -> str:
    return str(g.api_key.key_id)


def _limit_of_caller() -> str:
    return g.api_key.rate_limit or current_app.extensions["settings"].rate_limit


def _not_counted() -> bool:
    return "api_key" not in g or bool(request.environ.get(BUNDLE_ENTRY))


def _report_window(response: Response) -> Response:
    window = current_window()
    if window is not None:
        response.headers.update(window.headers())
    return response
