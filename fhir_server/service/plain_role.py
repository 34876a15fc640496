"""Practitioner roles of the plain-JSON API (``/v1/practitioner-roles``, reference/clinikehr/API.md).

Its fields become a FHIR PractitionerRole by the mapping of API.md, stored with the HPI's roles: the
same id series, versions, search and reads. Each is checked against a profile of its own
(PlainJsonPractitionerRole in ``profiles/``), not the HPI's, which forbids ``specialty`` and
``availableTime``; the role's coding comes from that profile's ValueSet. Such a role holds no HPI
period, so the HPI duplicate rule does not apply to it.

A create: parse (400) → the fields' rules (422, every failing field) → the practitioner must exist
(422) → map, check against the profile (422) → store as version 1.
"""

from __future__ import annotations

import typing as t

from .. import identifiers as ids
from ..definitions import PLAIN_ROLE_PROFILE
from ..instants import format_instant
from ..outcome import Issue, Msg, RequestRejected, issue
from ..terminology import PLAIN_ROLES
from ..validation import Target, check_profile
from ..validation.fhirpath import ROLE
from ..validation.plain_role import load_plain_role
from .confidentiality import served
from .context import Context
from .practitioner_role import Written, in_element_order, parse, store_new_role

PATH_PREFIX = "/v1/"  # where the API is served
UNISSUED = ids.format_role_id(0)  # well-formed, never issued (numbering starts at 1)
WORK = "work"
# Where each field lives in the FHIR resource, to name the field when the profile rejects an element.
_FIELD_OF_ELEMENT = {"practitioner": "practitionerId", "code": "role", "organization": "organizationName",
                     "specialty": "specialty", "location": "locationName", "availableTime": "availableDays"}


def create_plain_role(body: bytes, ctx: Context, request: str | None = None, retried: bool = False) -> Written:
    """Validate the request's fields and store them as a new PractitionerRole; return the stored resource.
    ``request`` and ``retried``: the Idempotency-Key's scope, as for :func:`.create_practitioner_role`.

    :raises RequestRejected: 400 for a body that is not a JSON object, else 422 naming each failing field.
    """
    doc = parse(body)
    if not isinstance(doc, dict):
        raise RequestRejected(issue(Msg.NOT_AN_OBJECT))
    fields, issues = load_plain_role(doc)
    if issues:
        raise RequestRejected(issues)
    earlier = ctx.store.roles.get_by_request(request) if request and retried else None
    if earlier is not None:
        ctx.store.roles.keep_version(earlier)
        return Written(served(earlier.resource, ctx.access), False)  # it may have been labelled since
    found = ctx.store.references.resolve([f"Practitioner/{fields['practitionerId']}"])
    if not found:
        raise RequestRejected(issue(Msg.FIELD_INVALID, "practitionerId", message=Msg.FIELD_NO_PRACTITIONER.value.text))
    practitioner = next(iter(found.values()))
    # Checked with a stand-in id, so that a rejected request uses up no role id.
    checked = _to_fhir(fields, UNISSUED, practitioner, ctx)
    problems = check_profile(checked, ctx.definitions.profiles[PLAIN_ROLE_PROFILE])
    if problems:
        raise RequestRejected([_as_field_issue(p, checked) for p in problems])
    resource = _to_fhir(fields, ctx.store.role_ids.issue(), practitioner, ctx)
    coding = resource["code"][0]["coding"][0]
    # The shape of the HPI's business key; such a role never reserves a period under it.
    key = "|".join([practitioner.key, "", "", coding["system"], coding["code"]])
    return Written(store_new_role(lambda rid: _to_fhir(fields, rid, practitioner, ctx), resource, key, ctx, request,
                                  reserving=False), True)


def read_plain_role(role_id: str, ctx: Context) -> tuple[dict[str, t.Any], str]:
    """A role created through this API, and when it was created.

    :raises RequestRejected: 404 for an unknown id, or a role this API did not create (its fields
        could not say what it holds).
    """
    stored = ctx.store.roles.get(role_id) if ids.is_valid_role_id(role_id) else None
    if stored is None or PLAIN_ROLE_PROFILE not in stored.resource["meta"].get("profile", []):
        raise RequestRejected(issue(Msg.PLAIN_NOT_FOUND, id=role_id))
    first = stored.resource if stored.vid == 1 else ctx.store.roles.version(role_id, 1)
    # A confidential role's organisation, facility and contacts show only with PractitionerRole.a.
    return served(stored.resource, ctx.access), (first or stored.resource)["meta"]["lastUpdated"]


def to_plain(resource: dict[str, t.Any], created_at: str) -> dict[str, t.Any]:
    """The API's ``data`` for a stored role: every field, null where the role has none."""
    telecom = {c.get("system"): c.get("value") for c in reversed(resource.get("telecom", []))}
    available = (resource.get("availableTime") or [{}])[0]
    return {
        "id": resource["id"],
        "practitionerId": resource["practitioner"]["reference"].rsplit("/", 1)[-1],
        "role": resource["code"][0]["coding"][0]["code"],
        "organizationName": resource.get("organization", {}).get("display"),
        "specialty": [s.get("text") for s in resource["specialty"]] if resource.get("specialty") else None,
        "locationName": (resource.get("location") or [{}])[0].get("display"),
        "phone": telecom.get("phone"),
        "email": telecom.get("email"),
        "availableDays": available.get("daysOfWeek"),
        "availableStartTime": _hh_mm(available.get("availableStartTime")),
        "availableEndTime": _hh_mm(available.get("availableEndTime")),
        "createdAt": created_at,
    }


def _to_fhir(fields: dict[str, t.Any], role_id: str, practitioner: Target, ctx: Context) -> dict[str, t.Any]:
    """The mapping of API.md; fields not sent leave their elements out."""
    concept = ctx.definitions.value_sets[PLAIN_ROLES].find(None, fields["role"])
    coding = {"system": concept.system, "code": concept.code, "display": concept.display} if concept else {"code": fields["role"]}
    resource: dict[str, t.Any] = {
        "resourceType": ROLE,
        "id": role_id,
        "meta": {"versionId": "1", "lastUpdated": format_instant(ctx.now()), "profile": [PLAIN_ROLE_PROFILE]},
        "identifier": [{"use": "official", "system": ids.ROLE_SYSTEM, "value": role_id}],
        "active": True,
        "practitioner": {"reference": practitioner.key, **({"display": practitioner.name} if practitioner.name else {})},
        "code": [{"coding": [{k: v for k, v in coding.items() if v}]}],
    }
    if fields["organizationName"]:
        resource["organization"] = {"display": fields["organizationName"]}
    if fields["specialty"]:
        resource["specialty"] = [{"text": text} for text in fields["specialty"]]
    if fields["locationName"]:
        resource["location"] = [{"display": fields["locationName"]}]
    telecom = [{"system": system, "value": fields[system], "use": WORK} for system in ("phone", "email") if fields[system]]
    if telecom:
        resource["telecom"] = telecom
    available = {name: value for name, value in (
        ("daysOfWeek", fields["availableDays"]),
        ("availableStartTime", _hh_mm_ss(fields["availableStartTime"])),
        ("availableEndTime", _hh_mm_ss(fields["availableEndTime"])),
    ) if value}
    if available:
        resource["availableTime"] = [available]
    return in_element_order(resource)


def _as_field_issue(problem: Issue, resource: dict[str, t.Any]) -> Issue:
    """A profile's verdict on an element, under the name of the field it came from."""
    path = (problem.expression or "").removeprefix(f"{ROLE}.")
    element = path.split(".")[0].split("[")[0]
    field = _FIELD_OF_ELEMENT.get(element, path or None)
    if element == "telecom":
        index = int(path.split("[")[1].split("]")[0]) if path.startswith("telecom[") else 0
        field = resource["telecom"][index]["system"] if index < len(resource.get("telecom", [])) else "telecom"
    return issue(Msg.FIELD_INVALID, field, message=problem.diagnostics)


def _hh_mm_ss(time: str | None) -> str | None:
    return f"{time}:00" if time else None


def _hh_mm(time: str | None) -> str | None:
    return time[:5] if time else None
