"""What the database commands of this process cost: every command pymongo sends, by name and time,
into the metrics, and a count of those a request sent, for its line in the request log.

pymongo publishes a command's events on the thread that sends it, so the count of a request is a
context variable of the thread running it (:func:`counting_round_trips`).
"""

from __future__ import annotations

import contextlib
import contextvars
import typing as t

from pymongo import monitoring

from .. import metrics

_round_trips: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("round_trips", default=None)


class CommandMetrics(monitoring.CommandListener):
    """Registered on every MongoClient the server opens (client.client_options)."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        count = _round_trips.get()
        if count is not None:
            count[0] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        metrics.observe_db_command(event.command_name, event.duration_micros / 1e6, failed=False)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        metrics.observe_db_command(event.command_name, event.duration_micros / 1e6, failed=True)


LISTENER = CommandMetrics()


@contextlib.contextmanager
def counting_round_trips() -> t.Iterator[None]:
    """Count the commands sent inside the block (a request), into an enclosing block's count if any
    (a Bundle's entries into the Bundle's)."""
    if _round_trips.get() is not None:
        yield
        return
    token = _round_trips.set([0])
    try:
        yield
    finally:
        _round_trips.reset(token)


def round_trips() -> int | None:
    """The commands sent so far in the current :func:`counting_round_trips` block; None outside one."""
    count = _round_trips.get()
    return count[0] if count is not None else None
