"""Search criteria in the database's terms.

The service parses search parameters into :class:`Criterion` values that know nothing of MongoDB;
:func:`to_filter` turns them into one flat query document over the ``search`` fields a record stores,
and :func:`matches` applies what that document cannot hold to the records it found.
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
    """One page of results; how many there are in all, if counted; and where the next page starts
    (the sort key of this page's last entry), if there is one."""

    total: int | None
    resources: list[dict[str, t.Any]]
    after: tuple[t.Any, ...] | None = None


class TooManyCandidates(Exception):
    """A search whose conditions cannot all be given to the database matched more records by the
    ones that can than the server will filter itself (:data:`MAX_CANDIDATES`)."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"more than {MAX_CANDIDATES} candidates before {fields}")
        self.fields = fields  # the search fields of the criteria left to the application


# How many records a search may read to apply, in the application, the conditions the database could
# only apply by scanning. Every role search names a practitioner, whose roles are few.
MAX_CANDIDATES = 1000


def _inside(low: dt.datetime | None, high: dt.datetime | None) -> dict[str, t.Any]:
    return {**({"$gte": low} if low else {}), **({"$lt": high} if high else {})}


def _narrowest(ranges: list[tuple[t.Any, ...]]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The intersection of half-open ranges ``[low, high)``: all must hold."""
    lows = [low for low, _, _ in ranges if low is not None]
    highs = [high for _, high, _ in ranges if high is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def to_filter(criteria: t.Iterable[Criterion], prefix: str = "") -> tuple[dict[str, t.Any], list[Criterion]]:
    """All ``criteria`` must hold (repeated parameters AND, comma-separated values OR): one flat query
    document, and the criteria it could not hold, which :func:`matches` applies to what it finds.

    Flat, because SecantusDB reads a filter through an index only when it has no top-level operator
    (with ``$and``, ``$or`` or ``$nor`` it scans the collection, and a hint makes that worse). So ranges
    on one field are intersected into one, and one ``ne`` becomes the field's own ``$not``; what has
    no flat form (a second condition on a list field, ``active=false``, a second ``ne``) is left over.
    """
    flat: dict[str, t.Any] = {}
    rest: list[Criterion] = []
    criteria = list(criteria)
    for name in dict.fromkeys(c.field for c in criteria):
        mine = [c for c in criteria if c.field == name]
        field = prefix + name
        ranges = [c.values for c in mine if c.kind == "between" and c.values[2]]
        outside = [c for c in mine if c.kind == "between" and not c.values[2]]
        if ranges or outside:
            # Date fields hold one instant each, so their ranges may be intersected.
            bounds = _inside(*_narrowest(ranges))
            if outside:
                bounds["$not"] = _inside(*outside[0].values[:2])
                rest += outside[1:]
            flat[field] = bounds or {"$exists": True}
        for n, c in enumerate(c for c in mine if c.kind != "between"):
            if n > 0:  # a list field may hold one value for each condition: only a scan of it can tell
                rest.append(c)
            elif c.kind == "any":
                flat[field] = {"$in": list(c.values)}
            elif c.values[1]:
                flat[f"{field}.from"], flat[f"{field}.to"] = {"$lte": c.values[0]}, {"$gte": c.values[0]}
            else:
                rest.append(c)  # outside the window: before it or after it, an $or of two fields
    return flat, rest


def matches(search: t.Mapping[str, t.Any], c: Criterion) -> bool:
    """Whether the ``search`` fields a record stores meet ``c``, as the database would decide."""
    value = search.get(c.field)
    if c.kind == "any":
        values = value if isinstance(value, list) else [value]
        return any(v in c.values for v in values)
    if c.kind == "between":
        inside: bool
        low, high, inside = c.values
        if not isinstance(value, dt.datetime):
            return False
        within = (low is None or value >= low) and (high is None or value < high)
        return within == inside
    wanted: bool
    day, wanted = c.values
    window = value or {}
    holds: bool = window.get("from", "") <= day <= window.get("to", "")
    return holds == wanted


def order(sort: t.Sequence[tuple[str, bool]], prefix: str = "search.") -> list[tuple[str, int]]:
    """The database's sort of ``sort`` (search field, ascending) pairs, ending with ``_id`` so that
    records with equal keys keep one order from page to page. A list field sorts by its least value
    ascending and its greatest descending (as FHIR asks); ``active`` by the last day of the window."""
    keys = [("_id" if name == "_id" else prefix + name + (".to" if name == "active" else ""), 1 if up else -1)
            for name, up in sort]
    return [*keys, ("_id", 1)] if not any(k == "_id" for k, _ in keys) else keys


def find_page(collection: t.Any, query: dict[str, t.Any], rest: list[Criterion], offset: int, count: int,
              sort: t.Sequence[tuple[str, bool]] = (), counted: bool = True) -> Page:
    """A page of the documents ``query`` (a flat filter an index serves) finds and ``rest`` (what it
    could not say) keeps, in the :func:`order` of ``sort`` (``_id`` order if empty), with their
    total if ``counted``. ``rest`` is applied here, to at most :data:`MAX_CANDIDATES` documents,
    never by a scan of the collection.

    :raises TooManyCandidates: more than that before ``rest`` applied.
    """
    keys = order(sort)
    if not rest:
        found = [d["resource"] for d in collection.find(query, {"resource": 1}).sort(keys).skip(offset).limit(count)] if count else []
        # A page that is not full, and starts within the results, ends them: it tells the total.
        told = 0 < len(found) < count or (offset == 0 and count > 0 and not found)
        total = (offset + len(found) if told else collection.count_documents(query)) if counted else None
        return Page(total, found)
    candidates = list(collection.find(query, {"resource": 1, "search": 1}).sort(keys).limit(MAX_CANDIDATES + 1))
    if len(candidates) > MAX_CANDIDATES:
        raise TooManyCandidates(list(dict.fromkeys(c.field for c in rest)))
    kept = [d["resource"] for d in candidates if all(matches(d["search"], c) for c in rest)]
    return Page(len(kept) if counted else None, kept[offset:offset + count])
