"""The plain-JSON API's envelope (reference/clinikehr/API.md): ``{"data", "meta"}`` on success,
``{"error", "meta"}`` on failure, always ``application/json``. The body's shape lives in
:mod:`fhir_server.envelope`; this module fills it from the Flask request.

``meta`` carries the request id (also the ``X-Request-Id`` header), the time of the answer (ISO 8601
UTC with milliseconds), the status, and the caller's rate-limit window: its size, what is left and
the seconds until it resets (null where the request was not counted, e.g. without a valid key).
"""

from __future__ import annotations

import typing as t

from flask import Response, g, request

from .. import envelope
from ..exact_json import dumps
from ..outcome import Issue
from ..service.plain_role import PATH_PREFIX
from .rate_limits import current_window


def in_plain_api() -> bool:
    return request.path.startswith(PATH_PREFIX)


def meta(status: int) -> dict[str, t.Any]:
    return envelope.meta(g.request_id, status, current_window())


def data_response(data: dict[str, t.Any], status: int = 200, headers: t.Mapping[str, str] | None = None) -> Response:
    return _json({"data": data, "meta": meta(status)}, status, headers)


def error_response(issues: t.Sequence[Issue], status: int, headers: t.Mapping[str, str] | None = None) -> Response:
    return _json(envelope.error_body(issues, status, meta(status)), status, headers)


def _json(body: dict[str, t.Any], status: int, headers: t.Mapping[str, str] | None) -> Response:
    text = dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, headers=dict(headers or {}), content_type="application/json; charset=utf-8")
