"""FHIR instants (``meta.lastUpdated``) to and from datetimes: one home for their format."""

from __future__ import annotations

import datetime as dt
import typing as t


def format_instant(moment: dt.datetime) -> str:
    """``2026-11-21T11:22:33.456Z``: milliseconds, UTC written as Z."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def last_updated(resource: t.Mapping[str, t.Any]) -> dt.datetime:
    return parse_instant(resource["meta"]["lastUpdated"])
