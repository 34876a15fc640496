"""The Practitioner, Organization and Location a PractitionerRole points at (SPEC.md §2, §4).

References are literal (``Practitioner/97ZACB``, or an absolute URL ending so); a logical reference by
HPI identifier is read the same way. Ids are checked by format and check character here, and for
existence through a lookup the caller passes in, so this module needs no database.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from .. import identifiers as ids
from ..outcome import Issue, Msg, issue
from .fhirpath import ROLE


@dataclass(frozen=True)
class Target:
    """A reference data record as the lookup found it: its live key (dormant ids resolve) and name."""

    key: str  # "Practitioner/97ZACB"
    name: str | None = None
    resource: dict[str, t.Any] | None = field(default=None, compare=False)  # the record, where the lookup read it

    @property
    def id(self) -> str:
        return self.key.split("/", 1)[1]


Lookup = t.Callable[[list[str]], dict[str, Target]]


@dataclass(frozen=True)
class _Spec:
    element: str
    resource_type: str
    system: str
    is_valid: t.Callable[[str], bool]
    invalid: Msg

    @property
    def path(self) -> str:
        return f"{ROLE}.{self.element}[0]" if self.element == "location" else f"{ROLE}.{self.element}"


ROLE_REFERENCES = (
    _Spec("practitioner", "Practitioner", ids.PERSON_SYSTEM, ids.is_valid_cpn, Msg.PRACTITIONER_INVALID),
    _Spec("organization", "Organization", ids.ORGANISATION_SYSTEM, ids.is_valid_organisation_id, Msg.ORGANIZATION_INVALID),
    _Spec("location", "Location", ids.FACILITY_SYSTEM, ids.is_valid_facility_id, Msg.FACILITY_INVALID),
)


def _referenced_id(ref: dict[str, t.Any], spec: _Spec) -> str | None:
    literal = ref.get("reference")
    if isinstance(literal, str):
        parts = literal.rstrip("/").split("/")
        return parts[-1] if len(parts) >= 2 and parts[-2] == spec.resource_type else None
    ident = ref.get("identifier") or {}
    return ident.get("value") if ident.get("system") in ids.SYSTEM_ALIASES[spec.system] else None


def _reference(resource: dict[str, t.Any], spec: _Spec) -> dict[str, t.Any] | None:
    value = resource.get(spec.element)
    return (value[0] if value else None) if isinstance(value, list) else value


def check_references(resource: dict[str, t.Any], lookup: Lookup) -> tuple[dict[str, Target], list[Issue]]:
    """Resolve each reference present; an id of the wrong format or unknown is an issue.

    Returns element name → Target for the references that resolved. Calls ``lookup`` once, and only
    with well-formed ids.
    """
    wanted: dict[str, str] = {}
    issues: list[Issue] = []
    for spec in ROLE_REFERENCES:
        ref = _reference(resource, spec)
        if ref is None:
            continue
        value = _referenced_id(ref, spec)
        if value is None or not spec.is_valid(value):
            issues.append(issue(spec.invalid, spec.path))
        else:
            wanted[spec.element] = f"{spec.resource_type}/{value}"
    found = lookup(list(wanted.values())) if wanted else {}
    resolved = {element: found[key] for element, key in wanted.items() if key in found}
    issues += [issue(spec.invalid, spec.path) for spec in ROLE_REFERENCES if spec.element in wanted and spec.element not in resolved]
    return resolved, issues


def point_at_live_records(resource: dict[str, t.Any], resolved: dict[str, Target]) -> dict[str, t.Any]:
    """Rewrite references to the live records' ids (a dormant id resolves to its live record), with
    their names as ``display`` when the client gave none, as the HPI returns them."""
    out = dict(resource)
    for spec in ROLE_REFERENCES:
        target = resolved.get(spec.element)
        if target is None:
            continue
        ref = {k: v for k, v in (_reference(resource, spec) or {}).items() if k != "identifier"}
        ref["reference"] = target.key
        if target.name and "display" not in ref:
            ref["display"] = target.name
        out[spec.element] = [ref] if spec.element == "location" else ref
    return out
