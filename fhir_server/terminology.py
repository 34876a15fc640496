"""Value sets the profiles bind, expanded from the CodeSystem and ValueSet resources of ``profiles/``.

Terminology is data: a changed file changes a verdict without a code change. A ValueSet that
includes a CodeSystem the folder does not hold fails at start-up, not at a request.
"""

from __future__ import annotations

import functools
import typing as t
from dataclasses import dataclass

ROLE_CODES = "https://nzhts.digital.health.nz/fhir/ValueSet/practitioner-role-code"
STATUS_REASONS = "https://nzhts.digital.health.nz/fhir/ValueSet/hpi-practitioner-role-status-reason-code"
CONTACT_POINT_USE = "https://nzhts.digital.health.nz/fhir/ValueSet/hpi-contact-point-use-code"
# The plain-JSON API's role values, each with the coding it is stored as.
PLAIN_ROLES = "https://fhir-server.example/fhir/ValueSet/plain-json-practitioner-role"


class TerminologyError(Exception):
    """The profiles folder cannot support a value set."""


@dataclass(frozen=True)
class Concept:
    system: str
    version: str | None
    code: str
    display: str | None

    def coding(self) -> dict[str, str]:
        """As a FHIR Coding."""
        return {k: v for k, v in (("system", self.system), ("version", self.version), ("code", self.code),
                                  ("display", self.display)) if v is not None}


@dataclass(frozen=True)
class ValueSet:
    url: str
    concepts: tuple[Concept, ...]  # in the order of the definitions

    @functools.cached_property  # built once: a create asks several times, of 1,098 role codes
    def codes(self) -> frozenset[tuple[str, str]]:
        return frozenset((c.system, c.code) for c in self.concepts)

    def contains(self, system: str | None, code: str | None) -> bool:
        return (system, code) in self.codes

    def contains_code(self, code: str | None) -> bool:
        """For bound ``code`` elements, which carry no system."""
        return any(c.code == code for c in self.concepts)

    def find(self, system: str | None, code: str) -> Concept | None:
        return next((c for c in self.concepts if c.code == code and system in (None, c.system)), None)


def _concepts(code_system: dict[str, t.Any], version: str | None = None) -> list[Concept]:
    url = code_system["url"]
    return [Concept(url, version or code_system.get("version"), c["code"], c.get("display")) for c in code_system.get("concept", [])]


def whole_code_system(code_system: dict[str, t.Any]) -> ValueSet:
    """Every code of a CodeSystem, as the implicit value set of all of them."""
    return ValueSet(code_system["url"], tuple(_concepts(code_system)))


def _expand(vs: dict[str, t.Any], code_systems: dict[str, dict[str, t.Any]]) -> tuple[Concept, ...]:
    concepts: list[Concept] = []
    for include in vs.get("compose", {}).get("include", []):
        system, version = include["system"], include.get("version")
        if "concept" in include:
            concepts += [Concept(system, version, c["code"], c.get("display")) for c in include["concept"]]
            continue
        cs = code_systems.get(system)
        if cs is None:
            raise TerminologyError(f"ValueSet {vs['url']} includes CodeSystem {system}, which profiles/ does not hold")
        concepts += _concepts(cs, version)
    return tuple(concepts)


def expand_value_sets(resources: t.Iterable[dict[str, t.Any]]) -> dict[str, ValueSet]:
    """Every ValueSet among ``resources``, expanded from the CodeSystems among them, by canonical url."""
    resources = list(resources)
    code_systems = {r["url"]: r for r in resources if r.get("resourceType") == "CodeSystem"}
    return {r["url"]: ValueSet(r["url"], _expand(r, code_systems)) for r in resources if r.get("resourceType") == "ValueSet"}
