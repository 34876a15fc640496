"""HPI dates: full ``YYYY-MM-DD`` only, although FHIR would accept ``YYYY`` or a dateTime (SPEC.md §3.5)."""

from __future__ import annotations

import datetime as dt
import re
import typing as t

from ..outcome import Issue, Msg, issue

# Open ends of a period sort before and after every YYYY-MM-DD date.
OPEN_START = "0000-00-00"
OPEN_END = "9999-12-31"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def is_hpi_date(value: t.Any) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def check_period(period: dict[str, t.Any] | None, path: str, bad_format: Msg, bad_order: Msg) -> list[Issue]:
    """Both dates ``YYYY-MM-DD`` and start ≤ end; the messages differ for a role and a contact point."""
    if not period:
        return []
    bad = [k for k in ("start", "end") if k in period and not is_hpi_date(period[k])]
    if bad:
        return [issue(bad_format, f"{path}.{k}") for k in bad]
    if "start" in period and "end" in period and period["start"] > period["end"]:
        return [issue(bad_order, path)]
    return []


def is_current(period: dict[str, t.Any] | None, today: str) -> bool:
    """Open start and end reach into the past and the future (SPEC.md §3.5)."""
    period = period or {}
    start: str = period.get("start", today)
    end: str = period.get("end", today)
    return start <= today <= end
