"""HPI business rules for creating a PractitionerRole that a StructureDefinition cannot say (SPEC.md §3.1, §3.5)."""

from __future__ import annotations

import typing as t

from ..outcome import Issue, Msg, issue
from .dates import check_period
from .fhirpath import ROLE, extension
from .role_elements import STATUS_REASON


def check_required(resource: dict[str, t.Any]) -> list[Issue]:
    """"A create PractitionerRole request must include: a valid hpi-person-id, an hpi-facility-id
    and/or hpi-organisation-id, a valid role code"."""
    issues = []
    if not resource.get("practitioner"):
        issues.append(issue(Msg.PRACTITIONER_REQUIRED, f"{ROLE}.practitioner"))
    if not resource.get("organization") and not resource.get("location"):
        issues.append(Issue(Msg.ORGANIZATION_OR_FACILITY_REQUIRED, f"{ROLE}.organization", also=(f"{ROLE}.location",)))
    if not resource.get("code"):
        issues.append(issue(Msg.ROLE_CODE_REQUIRED, f"{ROLE}.code"))
    return issues


def check_role_period(resource: dict[str, t.Any]) -> list[Issue]:
    """Period dates, and "A PractitionerRole-status-reason is mandatory when a period end-date is supplied"."""
    period = resource.get("period")
    issues = check_period(period, f"{ROLE}.period", Msg.PERIOD_FORMAT, Msg.PERIOD_ORDER)
    has_end = bool(period and "end" in period)
    has_reason = any(e.get("url") == STATUS_REASON for e in resource.get("extension", []))
    if has_end and not has_reason:
        issues.append(issue(Msg.STATUS_REASON_REQUIRED, extension(STATUS_REASON)))
    if has_reason and not has_end:
        issues.append(issue(Msg.PERIOD_END_REQUIRED, f"{ROLE}.period.end"))
    return issues
