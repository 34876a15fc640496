"""Value sets the profile binds, expanded from the CodeSystem and ValueSet files in ``profiles/``.

The server reads terminology as data so that a changed file changes a verdict without a code change.
A ValueSet that includes a CodeSystem the folder does not hold fails at start-up, not at a request.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

ROLE_CODES = "https://nzhts.digital.health.nz/fhir/ValueSet/practitioner-role-code"
STATUS_REASONS = "https://nzhts.digital.health.nz/fhir/ValueSet/hpi-practitioner-role-status-reason-code"
CONTACT_POINT_USE = "https://nzhts.digital.health.nz/fhir/ValueSet/hpi-contact-point-use-code"


class TerminologyError(Exception):
    """The profiles folder cannot support a binding the server enforces."""


@dataclass(frozen=True)
class ValueSet:
    url: str
    codes: frozenset[tuple[str, str]]  # (system, code)

    def contains(self, system: str | None, code: str | None) -> bool:
        return (system, code) in self.codes

    def contains_code(self, code: str | None) -> bool:
        """For bound ``code`` elements, which carry no system."""
        return any(c == code for _, c in self.codes)


def _expand(vs: dict[str, t.Any], code_systems: dict[str, dict[str, t.Any]]) -> frozenset[tuple[str, str]]:
    codes: set[tuple[str, str]] = set()
    for include in vs.get("compose", {}).get("include", []):
        system = include["system"]
        if "concept" in include:
            codes.update((system, c["code"]) for c in include["concept"])
            continue
        cs = code_systems.get(system)
        if cs is None:
            raise TerminologyError(f"ValueSet {vs['url']} includes CodeSystem {system}, which profiles/ does not hold")
        codes.update((system, c["code"]) for c in cs.get("concept", []))
    return frozenset(codes)


def load_value_sets(folder: Path) -> dict[str, ValueSet]:
    """Every ValueSet in ``folder``, expanded, by canonical url."""
    resources = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    code_systems = {r["url"]: r for r in resources if r.get("resourceType") == "CodeSystem"}
    value_sets = {r["url"]: ValueSet(r["url"], _expand(r, code_systems)) for r in resources if r.get("resourceType") == "ValueSet"}
    for url in (ROLE_CODES, STATUS_REASONS, CONTACT_POINT_USE):
        if url not in value_sets:
            raise TerminologyError(f"profiles/ has no ValueSet {url}, which the HPI profile binds")
    return value_sets
