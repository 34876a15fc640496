"""What a history request asks beyond paging: ``_since`` and ``_at`` (R4 http.html#history).

Paging (``_count``, ``_page``, ``_total``) is read by :func:`.search.parse_history`. Any other
parameter (but ``_format`` and ``_pretty``, which shape the answer) is refused with 400, whatever
``Prefer: handling`` says: a history Bundle has no ``search.mode`` to carry a warning in, and ignoring
a parameter meant to narrow the versions (``_list``, a misspelt ``_since``) would serve more than was
asked for, silently.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from dataclasses import dataclass

from ..instants import parse_instant
from ..outcome import Msg, RequestRejected, issue
from .search import Query
from .search import _date_range as date_range  # the date search values' precisions, one reading for both

#: Parameters a history request takes; ``_offset`` is refused by parse_history with its own message.
PARAMETERS = ("_since", "_at", "_count", "_page", "_total", "_offset", "_format", "_pretty")
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")


@dataclass(frozen=True)
class Window:
    """The versions asked for: written at or after ``since``; current at some moment of ``at`` [low, high)."""

    since: dt.datetime | None = None
    at: tuple[dt.datetime, dt.datetime] | None = None


def parse_window(args: t.Iterable[tuple[str, str]], query: Query, one_role: bool) -> Window:
    """Read ``_since`` (an instant) and ``_at`` (a date, to any precision; of one role's history only),
    adding them to ``query.used`` for the Bundle's links.

    :raises RequestRejected: listing every parameter in error.
    """
    since: dt.datetime | None = None
    at: tuple[dt.datetime, dt.datetime] | None = None
    issues = []
    for name, value in args:
        if name == "_since":
            if since is not None or not _INSTANT.fullmatch(value):
                issues.append(issue(Msg.HISTORY_SINCE_INVALID, value=value))
                continue
            try:
                since = parse_instant(value).astimezone(dt.timezone.utc)
            except ValueError:  # 2026-02-30T…
                issues.append(issue(Msg.HISTORY_SINCE_INVALID, value=value))
                continue
            query.used.append((name, value))
        elif name == "_at":
            parsed = date_range(value)
            if not one_role:
                issues.append(issue(Msg.HISTORY_AT_ONE_ROLE))
            elif at is not None or parsed is None or parsed[0] != "eq" or not value[:1].isdigit():
                issues.append(issue(Msg.HISTORY_AT_INVALID, value=value))
            else:
                at = parsed[1], parsed[2]
                query.used.append((name, value))
        elif name not in PARAMETERS:
            issues.append(issue(Msg.HISTORY_PARAM_UNSUPPORTED, name=name))
    if issues:
        raise RequestRejected(issues)
    return Window(since, at)
