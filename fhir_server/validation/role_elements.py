"""Where an HPI PractitionerRole keeps what the business rules read: its extensions and role code."""

from __future__ import annotations

import typing as t

from ..terminology import ValueSet

_SD = "http://hl7.org.nz/fhir/StructureDefinition/"
CREATOR = _SD + "practitionerRole-creator"
STATUS_REASON = _SD + "practitionerRole-status-reason"
MESSAGING_ADDRESS = _SD + "messaging-address"


def role_coding(resource: dict[str, t.Any], role_codes: ValueSet) -> dict[str, t.Any]:
    """The coding of a checked resource's role code that lies in the value set."""
    return next(c for c in resource["code"][0]["coding"] if role_codes.contains(c.get("system"), c.get("code")))


def status_reason_code(resource: dict[str, t.Any]) -> str | None:
    for ext in resource.get("extension", []):
        if ext.get("url") == STATUS_REASON:
            codings = ext.get("valueCodeableConcept", {}).get("coding", [])
            return codings[0].get("code") if codings else None
    return None
