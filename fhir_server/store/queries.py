"""Search criteria in the database's terms.

The service parses search parameters into :class:`Criterion` values that know nothing of MongoDB;
:func:`to_filter` turns them into one query document over the ``search`` fields a record stores.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    """One condition on a stored search field.

    - ``any``: the field (or one of its values, for a list) equals one of ``values``;
    - ``between``: ``values`` is ``(low, high, inside)``, a half-open range ``[low, high)`` with open
      ends as None; the field lies inside it, or outside it if ``inside`` is False;
    - ``active_on``: ``values`` is ``(day, wanted)``: whether the active window (``from``..``to``,
      inclusive ``YYYY-MM-DD`` days) holds ``day`` is ``wanted``.
    """

    field: str
    kind: t.Literal["any", "between", "active_on"]
    values: tuple[t.Any, ...]


@dataclass(frozen=True)
class Page:
    """One page of results, and how many there are in all."""

    total: int
    resources: list[dict[str, t.Any]]


def _between(name: str, low: dt.datetime | None, high: dt.datetime | None, inside: bool) -> dict[str, t.Any]:
    if inside:
        bounds = {**({"$gte": low} if low else {}), **({"$lt": high} if high else {})}
        return {name: bounds} if bounds else {}
    outside = [*([{name: {"$lt": low}}] if low else []), *([{name: {"$gte": high}}] if high else [])]
    return {"$or": outside} if outside else {"_id": {"$exists": False}}


def _condition(c: Criterion, prefix: str) -> dict[str, t.Any]:
    name = prefix + c.field
    if c.kind == "any":
        return {name: {"$in": list(c.values)}}
    if c.kind == "between":
        return _between(name, *c.values)
    day, wanted = c.values
    start, end = f"{prefix}{c.field}.from", f"{prefix}{c.field}.to"
    if wanted:
        return {start: {"$lte": day}, end: {"$gte": day}}
    return {"$or": [{start: {"$gt": day}}, {end: {"$lt": day}}]}


def to_filter(criteria: t.Iterable[Criterion], prefix: str = "") -> dict[str, t.Any]:
    """All ``criteria`` must hold (repeated parameters AND, comma-separated values OR).

    Written as one flat document where it can be: SecantusDB reads a filter through an index only
    when it has no top-level operator (with ``$and`` it scans the collection, and a hint makes that
    worse). What cannot be flat (``$or``, a second condition on one field) joins under ``$and``.
    """
    flat: dict[str, t.Any] = {}
    rest: list[dict[str, t.Any]] = []
    for condition in (_condition(c, prefix) for c in criteria):
        for name, value in condition.items():
            if name.startswith("$") or name in flat:
                rest.append({name: value})
            else:
                flat[name] = value
    return {**flat, "$and": rest} if rest else flat
