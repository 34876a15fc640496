"""The plain-JSON API's envelope (reference/clinikehr/API.md): ``{"data", "meta"}`` on success,
``{"error", "meta"}`` on failure, always ``application/json``.

``meta`` carries the request id (also the ``X-Request-Id`` header), the time of the answer (ISO 8601
UTC with milliseconds), the status, and the caller's rate-limit window: its size, what is left and
the seconds until it resets (null where the request was not counted, e.g. without a valid key).
``error`` carries ``code`` (the name of the HTTP status, e.g. ``UNPROCESSABLE_ENTITY``), ``message``
(every problem, readable) and ``fields`` (each failing field's name → its messages).
"""

from __future__ import annotations

import datetime as dt
import typing as t

from flask import Response, g, request

from ..exact_json import dumps
from ..instants import format_instant
from ..outcome import Issue
from ..service.plain_role import PATH_PREFIX
from .rate_limits import current_window

# error.code: the status's name, fixed here (Python's own names change between versions).
CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
         413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 422: "UNPROCESSABLE_ENTITY",
         429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR", 503: "SERVICE_UNAVAILABLE"}


def in_plain_api() -> bool:
    return request.path.startswith(PATH_PREFIX)


def meta(status: int) -> dict[str, t.Any]:
    window = current_window()
    return {
        "requestId": g.request_id,
        "timestamp": format_instant(dt.datetime.now(dt.timezone.utc)),
        "status": status,
        "rateLimitTotal": window.total if window else None,
        "rateLimitRemaining": window.remaining if window else None,
        "rateLimitReset": window.reset if window else None,
    }


def data_response(data: dict[str, t.Any], status: int = 200, headers: t.Mapping[str, str] | None = None) -> Response:
    return _json({"data": data, "meta": meta(status)}, status, headers)


def error_response(issues: t.Sequence[Issue], status: int, headers: t.Mapping[str, str] | None = None) -> Response:
    fields: dict[str, list[str]] = {}
    for found in issues:
        if found.expression:
            fields.setdefault(found.expression, []).append(found.diagnostics)
    message = "; ".join(f"{i.expression}: {i.diagnostics}" if i.expression else i.diagnostics for i in issues)
    error = {"code": CODES.get(status, f"HTTP_{status}"), "message": message, "fields": fields}
    return _json({"error": error, "meta": meta(status)}, status, headers)


def _json(body: dict[str, t.Any], status: int, headers: t.Mapping[str, str] | None) -> Response:
    text = dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, headers=dict(headers or {}), content_type="application/json; charset=utf-8")
