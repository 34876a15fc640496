"""Every metric the server keeps, in Prometheus's terms, and their exposition at ``/metrics``.

Kept by the official client library (prometheus_client). Under ``fhir-server serve`` each gunicorn
worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh private folder per run, see
cli/serve.py) and ``/metrics`` adds up every worker's, so one scrape sees the whole server whichever
worker answers it. Without that folder (tests of the app alone, the CLI) values live in the process.

Labels hold only bounded sets: a route is Flask's rule (``/PractitionerRole/<rid>``), never the
path with its ids; an unmatched request is :data:`UNMATCHED`; a method is one of :data:`METHODS` or
:data:`OTHER_METHOD`; a database command is its name; a
validation failure or an authentication failure is a catalogue name (fhir_server/outcome.py ``Msg``).
"""

from __future__ import annotations

import functools
import os
import typing as t

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE", "UNMATCHED", "exposition"]

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The route label of a request that matched no route (an app 404) or that the front refused before
#: the app saw it (413, 408, 431 ...).
UNMATCHED = "unmatched"
#: The method label of a request whose method is none of :data:`METHODS`: HTTP lets a client name any
#: token as its method, and each would otherwise make new series without end.
OTHER_METHOD = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("fhir_server_requests", "HTTP requests answered, by route template, method and status",
                   ["route", "method", "status"])
REQUEST_SECONDS = Histogram("fhir_server_request_duration_seconds",
                            "Time from a request's arrival, read whole, to its answer", ["route", "method"])
DB_COMMAND_SECONDS = Histogram("fhir_server_db_command_duration_seconds", "Database commands sent, by name, and their time",
                               ["command"], buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
DB_COMMAND_FAILURES = Counter("fhir_server_db_command_failures", "Database commands that failed, by name", ["command"])
RATE_LIMIT_REFUSALS = Counter("fhir_server_rate_limit_refusals", "Requests refused 429 by an API key's rate limit")
VALIDATION_FAILURES = Counter("fhir_server_validation_failures",
                              "Problems found in requests answered 400 or 422, by catalogue code", ["code"])
AUTH_FAILURES = Counter("fhir_server_auth_failures", "Requests refused 401 or 403, by reason (catalogue code)", ["reason"])


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    route = route or UNMATCHED
    method = method if method in METHODS else OTHER_METHOD
    _series(REQUESTS, route, method, str(status)).inc()
    _series(REQUEST_SECONDS, route, method).observe(seconds)


def observe_db_command(command: str, seconds: float, *, failed: bool) -> None:
    _series(DB_COMMAND_SECONDS, command).observe(seconds)
    if failed:
        _series(DB_COMMAND_FAILURES, command).inc()


@functools.cache
def _series(metric: t.Any, *labels: str) -> t.Any:
    """A metric's series for these labels, found once: the labels are bounded sets (see above), and
    looking a series up costs more than counting in it. (A series made before a fork writes to the
    new process's file: the library checks the pid at each change.)"""
    return metric.labels(*labels)


def exposition() -> bytes:
    """The text format of every metric, summed across the workers in multi-process mode."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_process_dead(pid: int) -> None:
    """What a worker that exited leaves in the folder is kept for its counters (they stay summed);
    this drops only its live gauges, which a dead process no longer has (gunicorn's child_exit)."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
