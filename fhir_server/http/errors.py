"""The one place errors become responses: an OperationOutcome on FHIR routes, the plain-JSON API's error
envelope on its own, never a stack trace."""

from __future__ import annotations

import typing as t

from flask import Flask, Response, request
from flask_limiter import RateLimitExceeded
from limits.errors import StorageError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .. import metrics
from ..outcome import FhirError, Issue, Msg, StoreUnavailable, issue, operation_outcome
from .envelope import error_response, in_plain_api
from .rate_limits import current_window
from .responses import fhir_response

_HTTP_MESSAGES = {404: Msg.UNKNOWN_ROUTE, 405: Msg.METHOD_NOT_ALLOWED, 413: Msg.TOO_LARGE}


def _respond(issues: t.Sequence[Issue], status: int, headers: t.Mapping[str, str] | None = None) -> Response:
    if in_plain_api():
        return error_response(issues, status, headers)
    return fhir_response(operation_outcome(issues), status, headers)


def _fhir_error(e: FhirError) -> Response:
    _count(e)
    headers = {"Retry-After": "1", **e.headers} if e.status == 503 else e.headers
    return _respond(e.issues, e.status, headers)


def _throttled(e: RateLimitExceeded) -> Response:
    window = current_window()
    limit, seconds = (window.limit, max(1, window.reset)) if window else (str(e.limit.limit), 1)
    metrics.RATE_LIMIT_REFUSALS.inc()
    return _respond([issue(Msg.THROTTLED, limit=limit, seconds=seconds)], 429, {"Retry-After": str(seconds)})


def _rate_limits_unavailable(e: StorageError) -> Response:
    # The counters live in the database: if it cannot count, it cannot serve either.
    return _fhir_error(StoreUnavailable())


def _http_error(e: HTTPException) -> Response:
    code = e.code or 500
    found = issue(_HTTP_MESSAGES.get(code, Msg.HTTP_ERROR), method=request.method, path=request.path, description=e.description)
    headers = {"Allow": ", ".join(e.valid_methods)} if isinstance(e, MethodNotAllowed) and e.valid_methods else {}
    return _respond([found], code, headers)


def _internal_error(e: HTTPException) -> Response:
    # Reached via Flask's handle_exception, which has already logged the original with its traceback;
    # the client learns only that the request failed.
    return _respond([issue(Msg.INTERNAL)], 500)


def _count(e: FhirError) -> None:
    """Validation failures by catalogue code, refusals of the caller by reason (the catalogue code;
    a refused token by what RFC 6750 calls it, as its WWW-Authenticate says)."""
    if e.status in (400, 422):
        for found in e.issues:
            metrics.VALIDATION_FAILURES.labels(found.msg.name).inc()
    elif e.status in (401, 403):
        reason = e.issues[0].msg.name
        challenge = e.headers.get("WWW-Authenticate", "")
        if e.issues[0].msg is Msg.UNAUTHORIZED and 'error="' in challenge:
            reason += ":" + challenge.split('error="', 1)[1].split('"', 1)[0]  # invalid_request (none), invalid_token
        metrics.AUTH_FAILURES.labels(reason).inc()


def register(app: Flask) -> None:
    app.register_error_handler(FhirError, _fhir_error)
    app.register_error_handler(RateLimitExceeded, _throttled)
    app.register_error_handler(StorageError, _rate_limits_unavailable)
    app.register_error_handler(500, _internal_error)
    app.register_error_handler(HTTPException, _http_error)
