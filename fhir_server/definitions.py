"""The conformance resources of ``profiles/``: StructureDefinitions, ValueSets and CodeSystems.

Read once at start-up. They are served as they are (``GET /StructureDefinition/{id}``...) and they
are what validation enforces: each StructureDefinition's snapshot is compiled into checks
(:mod:`.validation.profile`), each ValueSet expanded (:mod:`.terminology`). Anything the server cannot
enforce, or a profile it needs and cannot find, stops start-up with a :class:`DefinitionError` that
names the file and the element.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .r4_definitions import CORE
from .terminology import TerminologyError, ValueSet, expand_value_sets
from .validation.profile import Profile, ProfileError, compile_profile

KINDS = ("StructureDefinition", "ValueSet", "CodeSystem")
# What a resource that claims no profile is validated against.
DEFAULT_PROFILES = {"PractitionerRole": "http://hl7.org.nz/fhir/StructureDefinition/HPIPractitionerRole"}
# What a role created through the plain-JSON API (/v1/practitioner-roles) is validated against.
PLAIN_ROLE_PROFILE = "https://fhir-server.example/fhir/StructureDefinition/PlainJsonPractitionerRole"
# Profiles the server cannot start without, and the type each constrains.
REQUIRED_PROFILES = {**{url: kind for kind, url in DEFAULT_PROFILES.items()}, PLAIN_ROLE_PROFILE: "PractitionerRole"}


class DefinitionError(Exception):
    """``profiles/`` holds something the server cannot load or enforce."""


@dataclass(frozen=True)
class Definitions:
    resources: dict[str, dict[str, dict[str, t.Any]]]  # resource type → id → resource
    value_sets: dict[str, ValueSet]
    profiles: dict[str, Profile]  # by canonical url

    def get(self, kind: str, rid: str) -> dict[str, t.Any] | None:
        return self.resources.get(kind, {}).get(rid)

    def by_url(self, kind: str, url: str) -> dict[str, t.Any] | None:
        return next((r for r in self.resources.get(kind, {}).values() if r.get("url") == url), None)

    def profiles_for(self, claimed: t.Iterable[str], resource_type: str) -> tuple[list[Profile], list[str]]:
        """The profiles a resource of ``resource_type`` is checked against: the server's default, and
        those it claims in ``meta.profile`` (``url`` or ``url|version``); a claim adds checks, it
        never replaces the default's. Also the claims unknown here."""
        known, unknown = [self.profiles[DEFAULT_PROFILES[resource_type]]], []
        for canonical in claimed:
            url, _, version = canonical.partition("|")
            profile = self.profiles.get(url)
            sd = self.by_url("StructureDefinition", url)
            if profile is None or profile.type != resource_type or (version and sd is not None and sd.get("version") != version):
                unknown.append(canonical)
            elif profile not in known:
                known.append(profile)
        return known, unknown

    def known_profiles(self, resource_type: str) -> list[str]:
        return sorted(url for url, p in self.profiles.items() if p.type == resource_type)


def load_definitions(folder: Path) -> Definitions:
    """Read, expand and compile everything in ``folder``."""
    resources: dict[str, dict[str, dict[str, t.Any]]] = {kind: {} for kind in KINDS}
    for path in sorted(folder.glob("*.json")):
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
            kind, rid = resource["resourceType"], resource["id"]
        except (ValueError, KeyError, TypeError) as e:
            raise DefinitionError(f"{path}: not a FHIR JSON resource with resourceType and id ({e})") from None
        if kind not in resources:
            raise DefinitionError(f"{path}: a {kind}; profiles/ holds only {', '.join(KINDS)}")
        if rid in resources[kind]:
            raise DefinitionError(f"{path}: a second {kind} with id {rid}")
        resources[kind][rid] = resource
    try:
        value_sets = expand_value_sets([*resources["ValueSet"].values(), *resources["CodeSystem"].values()])
        profiles = _compile_all(resources["StructureDefinition"], value_sets)
    except (ProfileError, TerminologyError) as e:
        raise DefinitionError(f"{folder}: {e}") from None
    for url, resource_type in REQUIRED_PROFILES.items():
        if profiles.get(url, None) is None or profiles[url].type != resource_type:
            raise DefinitionError(f"{folder}: no StructureDefinition {url} of a {resource_type}, which the server needs")
    return Definitions(resources, value_sets, profiles)


def _compile_all(sds: dict[str, dict[str, t.Any]], value_sets: dict[str, ValueSet]) -> dict[str, Profile]:
    by_url = {sd["url"]: sd for sd in sds.values()}
    compiled: dict[str, Profile] = {}
    compiling: set[str] = set()

    def profile_of(url: str) -> Profile:
        if url in compiled:
            return compiled[url]
        if url not in by_url:
            raise ProfileError(f"names profile {url}, which profiles/ does not hold")
        if url in compiling:
            raise ProfileError(f"profile {url} refers to itself")
        compiling.add(url)
        compiled[url] = compile_profile(by_url[url], value_sets, profile_of, type_of)
        return compiled[url]

    def type_of(url: str) -> str:
        if url in by_url:
            return str(by_url[url]["type"])
        if url.startswith(CORE):
            return url[len(CORE):]
        raise ProfileError(f"names target profile {url}, which profiles/ does not hold")

    for url in by_url:
        profile_of(url)
    return compiled
