"""Create and read HPI PractitionerRoles (SPEC.md §3.1, §3.3).

``create_practitioner_role`` runs the DESIGN.md stages in order and stops after the first that finds
problems: ``_parse`` (400) → ``_check_structure`` (400) → ``_check_content`` (422: profile, business
rules, contact points and references, all reported together) → ``_complete`` → ``_reserve_business_key``
(422 duplicate) → ``store.roles.insert``. Database round trips: one to resolve the three references,
one to reserve the business key, one to insert; issuing the id costs one per ``BLOCK`` creates. A
rejected duplicate costs two more, to look for reservations abandoned by a process that died.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from .. import identifiers as ids
from ..outcome import Msg, RequestRejected, issue
from ..terminology import ROLE_CODES
from ..validation import (
    Target,
    assign_ranks,
    check_profile,
    check_references,
    check_required,
    check_role_period,
    check_structure,
    check_telecom,
    parse_json,
    point_at_live_records,
)
from ..validation.dates import is_current
from ..validation.fhirpath import ROLE
from ..validation.profile import PROFILE_URL, role_coding, status_reason_code
from .context import Context

# Roles ended as entered in error or duplicate hold no period: they never make another a duplicate.
NOT_RESERVING = {"enteredInError", "duplicate"}
NORMAL_CONFIDENTIALITY = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "M"}
HPI_ASSIGNER = {"reference": "Organization/G00001-G"}
# A reservation whose role is still not stored after this long was left by a process that died.
ABANDONED_AFTER = dt.timedelta(seconds=60)
_ELEMENT_ORDER = [
    "resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
    "modifierExtension", "identifier", "active", "period", "practitioner", "organization", "code",
    "specialty", "location", "healthcareService", "telecom", "availableTime", "notAvailable",
    "availabilityExceptions", "endpoint",
]


def create_practitioner_role(body: bytes, ctx: Context) -> dict[str, t.Any]:
    """Validate ``body`` as a new HPI PractitionerRole and store it as version 1.

    :raises RequestRejected: with every problem of the first stage that found any.
    """
    doc = _parse(body)
    _check_structure(doc)
    resolved = _check_content(doc, ctx)
    resource = _complete(doc, ctx.store.role_ids.issue(), resolved, ctx)
    key = _reserve_business_key(resource, ctx)
    ctx.store.roles.insert(resource, key)
    return resource


def read_practitioner_role(role_id: str, ctx: Context) -> dict[str, t.Any]:
    resource = ctx.store.roles.get(role_id) if ids.is_valid_role_id(role_id) else None
    if resource is None:
        raise RequestRejected(issue(Msg.NOT_FOUND, f"{ROLE}.id", id=role_id))
    # `active` is derived from the period, whose relation to today changes with time. A record with no
    # period keeps what was stored: the HPI's confidential R00000015-C is inactive without one.
    if "period" not in resource:
        return resource
    return {**resource, "active": is_current(resource["period"], ctx.today())}


def business_key(resource: dict[str, t.Any], ctx: Context) -> str | None:
    """The duplicate rule's key (SPEC.md §3.5) of a stored role, or None if it holds no period."""
    if status_reason_code(resource) in NOT_RESERVING:
        return None
    coding = role_coding(resource, ctx.value_sets[ROLE_CODES]) if resource.get("code") else {}
    org = resource.get("organization", {}).get("reference", "")
    location = (resource.get("location") or [{}])[0].get("reference", "")
    return "|".join([resource["practitioner"]["reference"], org, location, coding.get("system", ""), coding.get("code", "")])


def _parse(body: bytes) -> t.Any:
    doc, issues = parse_json(body)
    if issues:
        raise RequestRejected(issues)
    return doc


def _check_structure(doc: t.Any) -> None:
    issues = check_structure(doc, "PractitionerRole")
    if issues:
        raise RequestRejected(issues)


def _check_content(doc: dict[str, t.Any], ctx: Context) -> dict[str, Target]:
    issues = check_profile(doc, ctx.value_sets) + check_required(doc) + check_role_period(doc)
    issues += check_telecom(doc.get("telecom", []), ctx.today())
    resolved, reference_issues = check_references(doc, ctx.store.references.resolve)
    issues += reference_issues
    if issues:
        raise RequestRejected(issues)
    return resolved


def _complete(doc: dict[str, t.Any], role_id: str, resolved: dict[str, Target], ctx: Context) -> dict[str, t.Any]:
    """The record to store: server-assigned id, identifier, meta and active; references to live
    records; contact ranks filled in. Whatever the client sent for the server's parts is replaced."""
    resource = point_at_live_records(doc, resolved)
    now = ctx.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    resource.update(
        id=role_id,
        meta={"versionId": "1", "lastUpdated": now, "profile": [PROFILE_URL], "security": [NORMAL_CONFIDENTIALITY]},
        identifier=[
            *(i for i in doc.get("identifier", []) if i.get("system") != ids.ROLE_SYSTEM),
            {"use": "official", "system": ids.ROLE_SYSTEM, "value": role_id, "assigner": HPI_ASSIGNER},
        ],
        active=is_current(doc.get("period"), ctx.today()),
    )
    if "telecom" in doc:
        resource["telecom"] = assign_ranks(doc["telecom"])
    return in_element_order(resource)


def in_element_order(resource: dict[str, t.Any]) -> dict[str, t.Any]:
    """Keys in the order of the FHIR definition (a primitive's ``_x`` after ``x``), as FHIR JSON shows them."""
    rank = {name: i for i, name in enumerate(_ELEMENT_ORDER)}
    return dict(sorted(resource.items(), key=lambda kv: (rank.get(kv[0].lstrip("_"), len(rank)), kv[0].startswith("_"))))


def _reserve_business_key(resource: dict[str, t.Any], ctx: Context) -> str | None:
    key = business_key(resource, ctx)
    if key is None:
        return None
    roles, period, now = ctx.store.roles, resource.get("period"), ctx.now()
    reserved = roles.reserve(key, period, resource["id"], now) or (
        roles.clear_abandoned(key, now - ABANDONED_AFTER) and roles.reserve(key, period, resource["id"], now))
    if not reserved:
        raise RequestRejected(issue(Msg.DUPLICATE, ROLE))
    return key
