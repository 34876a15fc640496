"""The body of the plain-JSON API's error envelope (reference/clinikehr/API.md), free of Flask so that
every layer answers ``/v1`` errors alike: the views through :mod:`fhir_server.http.envelope`, and the
serving front (:mod:`fhir_server.serving`) for requests that never reach Flask.

``error`` carries ``code`` (the name of the HTTP status, e.g. ``UNPROCESSABLE_ENTITY``), ``message``
(every problem, readable) and ``fields`` (each failing field's name → its messages); ``meta`` carries
the request id, the time of the answer, the status and the caller's rate-limit window (None where the
request was not counted).
"""

from __future__ import annotations

import datetime as dt
import typing as t
import uuid

from .instants import format_instant
from .outcome import Issue

# error.code: the status's name, fixed here (Python's own names change between versions).
CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
         408: "REQUEST_TIMEOUT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 422: "UNPROCESSABLE_ENTITY",
         429: "TOO_MANY_REQUESTS", 431: "REQUEST_HEADER_FIELDS_TOO_LARGE", 500: "INTERNAL_SERVER_ERROR",
         503: "SERVICE_UNAVAILABLE"}


class RateWindow(t.Protocol):
    # Read-only, so that a frozen dataclass (http/rate_limits.py Window) is one.
    @property
    def total(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset(self) -> int: ...


def new_request_id() -> str:
    """The id of one request, answered in ``X-Request-Id`` (and ``meta.requestId`` on ``/v1``)."""
    return "req_" + uuid.uuid4().hex


def meta(request_id: str, status: int, window: RateWindow | None = None) -> dict[str, t.Any]:
    return {
        "requestId": request_id,
        "timestamp": format_instant(dt.datetime.now(dt.timezone.utc)),
        "status": status,
        "rateLimitTotal": window.total if window else None,
        "rateLimitRemaining": window.remaining if window else None,
        "rateLimitReset": window.reset if window else None,
    }


def error_body(issues: t.Sequence[Issue], status: int, meta: dict[str, t.Any]) -> dict[str, t.Any]:
    fields: dict[str, list[str]] = {}
    for found in issues:
        if found.expression:
            fields.setdefault(found.expression, []).append(found.diagnostics)
    message = "; ".join(f"{i.expression}: {i.diagnostics}" if i.expression else i.diagnostics for i in issues)
    error = {"code": CODES.get(status, f"HTTP_{status}"), "message": message, "fields": fields}
    return {"error": error, "meta": meta}
