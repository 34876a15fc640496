"""What an orchestrator and a monitoring system ask: ``/healthz`` (liveness), ``/readyz`` (readiness)
and ``/metrics`` (Prometheus). Each needs no key, token or userid, is not rate-limited, and answers
JSON (the metrics their text format), never HTML.

``/healthz`` touches nothing but the process: 200 while it can answer at all. ``/readyz`` is 200 when
the database answers within :data:`READY_TIMEOUT_SECONDS` and holds the schema version this release
expects, else 503 with an OperationOutcome saying why. The serving front
runs both on threads of their own (serving/front.py), so neither waits behind requests that hold
every app thread on a frozen database.

``/metrics`` is guarded by ``METRICS``: ``public``, ``token`` (``Authorization: Bearer`` with
``METRICS_TOKEN``, compared in constant time; 401 otherwise) or ``off`` (404 to everyone, as an
unknown route: the route stays registered, so that it is public and the answer needs no key).
"""

from __future__ import annotations

import hmac
import threading
import time

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import NotFound

from .. import metrics as server_metrics
from ..migrations import SCHEMA_VERSION
from ..outcome import Issue, Msg, RequestRejected, issue
from .incoming import context
from .responses import fhir_response

__all__ = ["READY_TIMEOUT_SECONDS", "bp", "metrics_bp"]

bp = Blueprint("probes", __name__)
metrics_bp = Blueprint("metrics", __name__)

#: How long readiness waits for the database's answer to a ping.
READY_TIMEOUT_SECONDS = 1.0
#: How long one readiness check is reused: probes of every worker's clients coming together cost the
#: database one ping a worker, not one each.
READY_REUSE_SECONDS = 0.5
_NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz() -> Response:
    return _json('{"status":"ok"}')


@bp.get("/readyz")
def readyz() -> Response:
    problems = _readiness.check()
    if problems:
        return fhir_response({"resourceType": "OperationOutcome", "issue": [p.to_fhir() for p in problems]}, 503,
                             {"Retry-After": "1", **_NO_STORE})
    return _json('{"status":"ready"}')


def problems() -> list[Issue]:
    """Why the server cannot serve now: the database does not answer within :data:`READY_TIMEOUT_SECONDS`,
    or holds another schema version than this release's (``fhir-server migrate``). One read."""
    found = context().store.schema_version_within(READY_TIMEOUT_SECONDS)
    if found is None:
        return [issue(Msg.NOT_READY_DATABASE, seconds=f"{READY_TIMEOUT_SECONDS:g}")]
    if found != SCHEMA_VERSION:
        return [issue(Msg.NOT_READY_SCHEMA, found=found, needed=SCHEMA_VERSION)]
    return []


class _Readiness:
    """The last check, reused for :data:`READY_REUSE_SECONDS`; one check at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._problems: list[Issue] = []

    def check(self) -> list[Issue]:
        with self._lock:
            if time.monotonic() - self._checked > READY_REUSE_SECONDS:
                self._problems = problems()
                self._checked = time.monotonic()
            return self._problems


_readiness = _Readiness()


@metrics_bp.get("/metrics")
def metrics_view() -> Response:
    settings = current_app.extensions["settings"]
    if settings.metrics == "off":
        raise NotFound()
    if settings.metrics == "token" and not _bearer_is(settings.metrics_token):
        raise RequestRejected(issue(Msg.METRICS_TOKEN_REQUIRED), {"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(server_metrics.exposition(), 200, {**_NO_STORE, "Content-Type": server_metrics.CONTENT_TYPE})


def _bearer_is(secret: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # An empty secret matches nothing: METRICS=token without METRICS_TOKEN keeps everyone out.
    return bool(secret) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), secret.encode())


def _json(text: str) -> Response:
    return Response(text, 200, {**_NO_STORE, "Content-Type": "application/json"})


def install(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(metrics_bp)
