"""Flask blueprints: parse the request, call one service function, shape the response."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from .. import audit, logs, metrics
from ..auth.scopes import ROUTES
from ..envelope import new_request_id
from ..store.monitoring import round_trips
from . import (
    auth,
    bundle,
    compression,
    cors,
    definitions,
    errors,
    hosts,
    metadata,
    oauth,
    openapi,
    plain_roles,
    practitioner_role,
    probes,
    provenance,
    rate_limits,
    reference_data,
)
from .envelope import in_plain_api
from .rate_limits import BUNDLE_LOOKUP
from .responses import negotiate, preference_applied

__all__ = ["register"]

_MAX_CORRELATION_ID = 200


def _tag_request() -> None:
    # A Bundle's entries are run as requests of their own (http/bundle.py): they keep its id.
    if BUNDLE_LOOKUP not in request.environ or "request_id" not in g:
        g.request_id = new_request_id()
    logs.REQUEST_ID.set(g.request_id)
    request.environ.setdefault(audit.RECEIVED, time.monotonic())  # the front sets it when the request arrived


def _negotiate() -> None:
    # The plain-JSON API, OAuth's endpoints and the probes answer JSON (or metrics text), whatever is
    # asked; a preflight, nothing.
    answers_own = (oauth.bp.name, probes.bp.name, probes.metrics_bp.name)
    if not in_plain_api() and request.blueprint not in answers_own and not cors.is_preflight():
        negotiate()


def _tag_response(response: Response) -> Response:
    """Every response carries X-Request-Id; X-Correlation-Id is echoed when given (SPEC.md §6)."""
    response.headers["X-Request-Id"] = g.get("request_id") or new_request_id()
    if response.mimetype == "text/html" and not response.is_streamed and not response.get_data():
        del response.headers["Content-Type"]  # Flask's own answer to OPTIONS: no body, so no type, never HTML
    correlation = _correlation_id()
    if correlation:
        response.headers["X-Correlation-Id"] = correlation
    return response


def _correlation_id() -> str | None:
    correlation = request.headers.get("X-Correlation-Id")
    if correlation and len(correlation) <= _MAX_CORRELATION_ID and correlation.isprintable():
        return correlation
    return None


def _log_request(response: Response) -> Response:
    """One line for every request, answered or refused: Flask runs this for error answers too.

    Only what the server has checked is written: the caller's client and key once the key was found,
    the userid once it passed its check (the header itself may be anything); never a token or a key.
    """
    access = g.get("access")
    api_key, client = g.get("api_key"), g.get("client")
    interaction = ROUTES.get(request.endpoint or "")
    route = request.url_rule.rule if request.url_rule is not None else None
    seconds = time.monotonic() - request.environ.get(audit.RECEIVED, time.monotonic())
    fields = {
        "request_id": g.get("request_id"),
        "correlation_id": _correlation_id(),
        "client_id": client.client_id if client is not None else None,
        "key_id": api_key.key_id if api_key is not None else None,
        "userid": access.userid if access is not None else None,
        "interaction": f"{interaction[0]}.{interaction[1]}" if interaction else request.endpoint,
        "method": request.method,
        "route": route,
        "path": request.path,
        "status": response.status_code,
        "latency_ms": round(seconds * 1000, 1),
        "db_round_trips": round_trips(),
    }
    if BUNDLE_LOOKUP in request.environ:
        fields["bundle_entry"] = True
    else:  # a Bundle's entries are in its own count and time
        metrics.observe_request(route, request.method, response.status_code, seconds)
    audit.log_request(**fields)
    if BUNDLE_LOOKUP not in request.environ:
        logs.REQUEST_ID.set(None)  # the thread goes back to the pool
    return response


def register(app: Flask) -> None:
    """Hooks run in this order: tag, negotiate (so that later errors are in the chosen format), the
    caller's key, its rate limit, the token, userid and scope; then the view. The request log is
    registered first: Flask runs after-request hooks last first, so it sees the final answer; then
    compression, which takes the body once every other hook is done with it."""
    settings = app.extensions["settings"]
    logs.configure(settings.log_format, settings.log_level)  # as the CLI and gunicorn set it; first setup wins
    app.after_request(_log_request)
    compression.install(app)
    app.before_request(_tag_request)
    hosts.install(app)  # an unknown host gets 400 before any hook below; X-Forwarded-* from trusted proxies only
    app.before_request(_negotiate)
    app.before_request(auth.identify_caller)
    rate_limits.install(app, settings)
    app.before_request(auth.authenticate)
    app.after_request(_tag_response)
    app.after_request(preference_applied)
    errors.register(app)
    cors.install(app, settings.cors_origins)
    probes.install(app)
    for module in (metadata, oauth, openapi, practitioner_role, reference_data, definitions, bundle, plain_roles, provenance):
        app.register_blueprint(module.bp)
