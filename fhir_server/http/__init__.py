"""Flask blueprints: parse the request, call one service function, shape the response."""

from __future__ import annotations

from flask import Flask, Response, g, request

from . import auth, bundle, definitions, errors, metadata, oauth, openapi, plain_roles, practitioner_role, rate_limits, reference_data
from ..envelope import new_request_id
from .envelope import in_plain_api
from .responses import negotiate

__all__ = ["register"]

_MAX_CORRELATION_ID = 200


def _tag_request() -> None:
    g.request_id = new_request_id()


def _negotiate() -> None:
    # The plain-JSON API and OAuth's endpoints answer JSON, whatever is asked.
    if not in_plain_api() and request.blueprint != oauth.bp.name:
        negotiate()


def _tag_response(response: Response) -> Response:
    """Every response carries X-Request-Id; X-Correlation-Id is echoed when given (SPEC.md §6)."""
    response.headers["X-Request-Id"] = g.get("request_id") or new_request_id()
    correlation = request.headers.get("X-Correlation-Id")
    if correlation and len(correlation) <= _MAX_CORRELATION_ID and correlation.isprintable():
        response.headers["X-Correlation-Id"] = correlation
    return response


def register(app: Flask) -> None:
    """Hooks run in this order: tag, negotiate (so that later errors are in the chosen format), the
    caller's key, its rate limit, the token, userid and scope; then the view."""
    app.before_request(_tag_request)
    app.before_request(_negotiate)
    app.before_request(auth.identify_caller)
    rate_limits.install(app, app.extensions["settings"])
    app.before_request(auth.authenticate)
    app.after_request(_tag_response)
    errors.register(app)
    for module in (metadata, oauth, openapi, practitioner_role, reference_data, definitions, bundle, plain_roles):
        app.register_blueprint(module.bp)
