"""The HPIPractitionerRole profile (SPEC.md §1): cardinality, prohibited elements, extension shapes and
required bindings. Checks the shape of what is there; what must be there is :mod:`.rules`'s business.
"""

from __future__ import annotations

import typing as t

from ..outcome import Issue, Msg, issue
from ..terminology import CONTACT_POINT_USE, ROLE_CODES, STATUS_REASONS, ValueSet
from .fhirpath import ROLE, extension

PROFILE_URL = "http://hl7.org.nz/fhir/StructureDefinition/HPIPractitionerRole"
_SD = "http://hl7.org.nz/fhir/StructureDefinition/"
CREATOR = _SD + "practitionerRole-creator"
STATUS_REASON = _SD + "practitionerRole-status-reason"
MESSAGING_ADDRESS = _SD + "messaging-address"

PROHIBITED = ("specialty", "healthcareService", "availableTime", "notAvailable", "availabilityExceptions", "endpoint")
AT_MOST_ONE = ("code", "location")

# Complex extensions: sub-extension name → (minimum count, the value[x] it must carry). Each at most once.
_PARTS: dict[str, dict[str, tuple[int, str]]] = {
    CREATOR: {"person": (1, "valueReference"), "organization": (0, "valueReference")},
    MESSAGING_ADDRESS: {"provider": (1, "valueString"), "value": (1, "valueString")},
}


def check_profile(resource: dict[str, t.Any], value_sets: t.Mapping[str, ValueSet]) -> list[Issue]:
    issues: list[Issue] = []
    for name in PROHIBITED:
        if name in resource or f"_{name}" in resource:
            element = f"{ROLE}.{name}"
            issues.append(issue(Msg.PROHIBITED, element, element=element))
    for name in AT_MOST_ONE:
        if len(resource.get(name, [])) > 1:
            element = f"{ROLE}.{name}"
            issues.append(issue(Msg.TOO_MANY, element, element=element, max=1))
    issues += _check_extensions(resource.get("extension", []), value_sets[STATUS_REASONS])
    issues += _check_role_code(resource.get("code", []), value_sets[ROLE_CODES])
    contact_use = value_sets[CONTACT_POINT_USE]
    for i, contact in enumerate(resource.get("telecom", [])):
        use = contact.get("use")
        if use is not None and not contact_use.contains_code(use):
            issues.append(issue(Msg.CODE_NOT_IN_VALUE_SET, f"{ROLE}.telecom[{i}].use", code=use, value_set=contact_use.url))
    return issues


def _check_extensions(extensions: list[dict[str, t.Any]], status_reasons: ValueSet) -> list[Issue]:
    issues: list[Issue] = []
    for url in (CREATOR, STATUS_REASON, MESSAGING_ADDRESS):
        if sum(1 for e in extensions if e.get("url") == url) > 1:
            issues.append(issue(Msg.TOO_MANY, extension(url), element=extension(url), max=1))
    for ext in extensions:
        url = ext.get("url")
        if url in _PARTS:
            issues += _check_complex(ext, _PARTS[url], extension(url))
        elif url == STATUS_REASON:
            issues += _check_status_reason(ext, status_reasons)
    return issues


def _check_complex(ext: dict[str, t.Any], parts: dict[str, tuple[int, str]], path: str) -> list[Issue]:
    issues = [issue(Msg.PROHIBITED, f"{path}.{k}", element=f"{path}.{k}") for k in ext if k.startswith("value")]
    subs = ext.get("extension", [])
    for name, (minimum, value_key) in parts.items():
        found = [s for s in subs if s.get("url") == name]
        element = extension(name, path)
        if len(found) < minimum:
            issues.append(issue(Msg.REQUIRED, element, element=element))
        elif len(found) > 1:
            issues.append(issue(Msg.TOO_MANY, element, element=element, max=1))
        issues += [issue(Msg.REQUIRED, f"{element}.{value_key}", element=f"{element}.{value_key}")
                   for s in found if value_key not in s]
    return issues


def _check_status_reason(ext: dict[str, t.Any], status_reasons: ValueSet) -> list[Issue]:
    path = extension(STATUS_REASON)
    concept = ext.get("valueCodeableConcept")
    if concept is None:
        return [issue(Msg.REQUIRED, f"{path}.valueCodeableConcept", element=f"{path}.valueCodeableConcept")]
    return _check_binding(concept, status_reasons, f"{path}.valueCodeableConcept")


def _check_role_code(codes: list[dict[str, t.Any]], role_codes: ValueSet) -> list[Issue]:
    return _check_binding(codes[0], role_codes, f"{ROLE}.code[0]") if codes else []


def _check_binding(concept: dict[str, t.Any], value_set: ValueSet, path: str) -> list[Issue]:
    """A required binding: at least one coding of the CodeableConcept must be in the value set."""
    codings = concept.get("coding", [])
    if any(value_set.contains(c.get("system"), c.get("code")) for c in codings):
        return []
    shown = codings[0].get("code") if codings else concept.get("text")
    return [issue(Msg.CODE_NOT_IN_VALUE_SET, f"{path}.coding", code=shown, value_set=value_set.url)]


def role_coding(resource: dict[str, t.Any], role_codes: ValueSet) -> dict[str, t.Any]:
    """The coding of a checked resource's role code that lies in the value set."""
    return next(c for c in resource["code"][0]["coding"] if role_codes.contains(c.get("system"), c.get("code")))


def status_reason_code(resource: dict[str, t.Any]) -> str | None:
    for ext in resource.get("extension", []):
        if ext.get("url") == STATUS_REASON:
            codings = ext.get("valueCodeableConcept", {}).get("coding", [])
            return codings[0].get("code") if codings else None
    return None
