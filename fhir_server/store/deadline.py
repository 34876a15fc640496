"""One deadline for all the database work of a request (DESIGN.md "Faults: every answer true").

pymongo's client-side operation timeout (``pymongo.timeout``) is a context of the thread: every
operation of every MongoClient inside it, the Store's and the rate-limit counters' alike, shares one
budget, and each command carries ``maxTimeMS`` of what is left, so the server stops too. Past it the
driver raises a time-out error, which :mod:`.errors` turns into a 503. The deadline itself is kept
beside it, so that a reservation can carry a lease that ends when its request can no longer write.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import typing as t

import pymongo

from .monitoring import counting_round_trips

_deadline: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar("deadline", default=None)

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


@contextlib.contextmanager
def database_deadline(seconds: float) -> t.Iterator[None]:
    """All database operations inside the block finish within ``seconds`` in total (or by the deadline
    of an enclosing block, if that is sooner: a Bundle entry within its Bundle), or fail."""
    ends = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=max(seconds, 0.001))
    outer = _deadline.get()
    token = _deadline.set(min(ends, outer) if outer else ends)
    try:
        with pymongo.timeout(max(seconds, 0.001)):  # nested, pymongo too keeps the sooner deadline
            yield
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def finished_by(when: dt.datetime) -> t.Iterator[None]:
    """The database operations inside the block finish by ``when`` (or the request's deadline, if
    sooner), server side included: after it, nothing they sent can still be applied."""
    with pymongo.timeout(max(0.001, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())):
        yield


def current_deadline(default_seconds: float) -> dt.datetime:
    """When the current request's database work must be over (or ``default_seconds`` from now outside one)."""
    return _deadline.get() or dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=default_seconds)


def seconds_left(default_seconds: float) -> float:
    return (current_deadline(default_seconds) - dt.datetime.now(dt.timezone.utc)).total_seconds()


def with_deadline(wsgi_app: WSGIApplication, seconds: float, bundle_seconds: float) -> WSGIApplication:
    """``wsgi_app`` with one database deadline per request: ``seconds``, or for a batch or transaction
    Bundle (``POST /``) ``bundle_seconds`` (at least ``seconds``), within which each entry has
    ``seconds`` (http/bundle.py). The app's responses are built whole before it returns (none
    streams), so the block covers every database call of the request."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        bundle = environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "") in ("", "/")
        with database_deadline(max(seconds, bundle_seconds) if bundle else seconds), counting_round_trips():
            return wsgi_app(environ, start_response)

    return app
