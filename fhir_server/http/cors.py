"""Cross-origin requests from browsers (CORS), for the origins of ``CORS_ORIGINS`` only (Flask-CORS).

Off unless origins are configured. A preflight (``OPTIONS`` with ``Access-Control-Request-Method``)
is answered by Flask's own ``OPTIONS`` answer with the CORS headers: it needs no key, token or userid,
is not counted against a rate limit and reads nothing from the database (the hooks of .auth and
.rate_limits let it by, see :func:`is_preflight`). Browsers send no credentials with a preflight, so
asking for them would make every cross-origin call fail.

The answers carry ``Access-Control-Allow-Origin`` (the caller's origin, or ``*`` when any origin is
allowed) and expose the headers a FHIR client reads; no cookies are used, so no credentials are
allowed (``Authorization`` is sent by the client as an ordinary header).
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

__all__ = ["install", "is_preflight"]

EXPOSED = ["ETag", "Location", "Content-Location", "Last-Modified", "X-Request-Id", "X-Correlation-Id",
           "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "Retry-After",
           "WWW-Authenticate", "Preference-Applied"]
ALLOWED = ["Authorization", "x-api-key", "userid", "Content-Type", "Accept", "If-Match", "If-None-Exist",
           "If-None-Match", "If-Modified-Since", "Prefer", "X-Correlation-Id", "Idempotency-Key"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
MAX_AGE_SECONDS = 600  # how long a browser may keep a preflight's answer


def is_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def install(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer cross-origin requests from ``origins`` (``*``: any); none, no CORS headers at all."""
    if not origins:
        return
    wildcard = "*" in origins
    CORS(app, origins="*" if wildcard else list(origins), send_wildcard=wildcard, always_send=False,
         expose_headers=EXPOSED, allow_headers=ALLOWED, methods=METHODS, supports_credentials=False,
         max_age=MAX_AGE_SECONDS)
    if not wildcard:
        app.after_request(_vary_by_origin)


def _vary_by_origin(response: Response) -> Response:
    # The answer to one origin names it and another's does not: a shared cache must keep them apart.
    response.vary.add("Origin")
    return response
