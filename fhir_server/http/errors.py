"""The one place errors become responses: every error is an OperationOutcome, never a stack trace."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..outcome import FhirError, Msg, StoreUnavailable, issue, operation_outcome
from .responses import fhir_response

_HTTP_MESSAGES = {404: Msg.UNKNOWN_ROUTE, 405: Msg.METHOD_NOT_ALLOWED, 413: Msg.TOO_LARGE}


def _fhir_error(e: FhirError) -> Response:
    headers = {"Retry-After": "1"} if isinstance(e, StoreUnavailable) else {}
    return fhir_response(e.outcome(), e.status, headers)


def _http_error(e: HTTPException) -> Response:
    code = e.code or 500
    found = issue(_HTTP_MESSAGES.get(code, Msg.HTTP_ERROR), method=request.method, path=request.path, description=e.description)
    response = fhir_response(operation_outcome([found]), code)
    if isinstance(e, MethodNotAllowed) and e.valid_methods:
        response.headers["Allow"] = ", ".join(e.valid_methods)
    return response


def _internal_error(e: HTTPException) -> Response:
    # Reached via Flask's handle_exception, which has already logged the original with its traceback;
    # the client learns only that the request failed.
    return fhir_response(operation_outcome([issue(Msg.INTERNAL)]), 500)


def register(app: Flask) -> None:
    app.register_error_handler(FhirError, _fhir_error)
    app.register_error_handler(500, _internal_error)
    app.register_error_handler(HTTPException, _http_error)
