"""Confidential records (SPEC.md §1.4): what a caller without admin access is served of them, and who
may label them. The rules are listed with the others in :mod:`..auth.scopes`.

A PractitionerRole or Practitioner whose ``meta.security`` holds the v3-Confidentiality label ``R``
(restricted; ``V``, very restricted, is stricter and hidden alike) is served to a caller without the
type's admin scope (``T.a``) without the elements that say where the person works and how to reach
them (:data:`HIDDEN`), tagged ``v3-ObservationValue#REDACTED``; with ``T.a`` it is served whole.
:func:`served` is the one function that decides it, on every path that serves such a record: read,
vread, history, search, ``_include``, conditional create, the plain-JSON API (Bundle entries run
through the same routes).

Older versions: a role's organisation and facility never change, so an unlabelled older version of
a role labelled now would show what the current one hides. A version is therefore served redacted if
it is labelled itself *or the role's current version is* (:func:`served_version`). Setting or
clearing a label is the one write of the new current version, so no crash between two writes can
leave an older version unprotected, and a role labelled when it was loaded (the reference data's
R00000015-C) is covered from its first version. A version labelled itself stays redacted after the
label is cleared: erring towards hiding. Practitioners keep only their current version.

Search: a criterion on a hidden element (``organization``, ``location``) does not match a
confidential record for a caller without admin (:func:`visible_only`): otherwise
``practitioner=X&organization=Y`` would tell whether a role hides organisation Y. Such records carry
the search field ``confidential`` (see :func:`.search.search_fields`), so the database applies the
condition and totals and pages stay true. Practitioners have no search parameter on a hidden element.
"""

from __future__ import annotations

import typing as t

from ..auth import Access
from ..outcome import Msg
from ..store.queries import Criterion

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
NORMAL = {"system": CONFIDENTIALITY, "code": "M"}
REDACTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED"}
CONFIDENTIAL_CODES = ("R", "V")
# What a caller without admin does not see of a confidential record. The narrative goes too: it may
# repeat any of them.
HIDDEN: dict[str, tuple[str, ...]] = {
    "PractitionerRole": ("text", "extension", "modifierExtension", "organization", "location", "telecom"),
    "Practitioner": ("text", "extension", "modifierExtension", "telecom", "address"),
}
# The search parameters of each type that match a hidden element.
HIDDEN_PARAMETERS: dict[str, tuple[str, ...]] = {"PractitionerRole": ("organization", "location"), "Practitioner": ()}
# The stored search field that marks a confidential record; absent on the others.
SEARCH_FIELD = "confidential"


def labels(resource: t.Mapping[str, t.Any]) -> set[str]:
    """The v3-Confidentiality codes in the resource's ``meta.security``."""
    meta = resource.get("meta")
    security = meta.get("security") if isinstance(meta, dict) else None
    return {code for c in (security if isinstance(security, list) else [])
            if isinstance(c, dict) and c.get("system") == CONFIDENTIALITY and isinstance(code := c.get("code"), str)}


def is_confidential(resource: t.Mapping[str, t.Any]) -> bool:
    return any(code in CONFIDENTIAL_CODES for code in labels(resource))


def served(resource: dict[str, t.Any], access: Access, confidential: bool = False) -> dict[str, t.Any]:
    """``resource`` as ``access`` may see it: whole, or without :data:`HIDDEN` and tagged REDACTED if
    it is confidential (or ``confidential`` says its record is) and the caller lacks the type's admin."""
    rtype = resource.get("resourceType", "")
    if rtype not in HIDDEN or access.admin(rtype) or not (confidential or is_confidential(resource)):
        return resource
    security = list(resource.get("meta", {}).get("security", []))
    if REDACTED not in [{"system": c.get("system"), "code": c.get("code")} for c in security]:
        security.append(REDACTED)
    shown = {k: v for k, v in resource.items() if k not in HIDDEN[rtype]}
    shown["meta"] = {**resource.get("meta", {}), "security": security}
    return shown


def served_version(version: dict[str, t.Any], current: t.Callable[[], dict[str, t.Any] | None],
                   access: Access) -> dict[str, t.Any]:
    """A version of a role as ``access`` may see it: redacted if it, or the role's ``current``
    version (asked only when it decides), is confidential."""
    rtype = version.get("resourceType", "")
    if rtype not in HIDDEN or access.admin(rtype) or is_confidential(version):
        return served(version, access)
    now = current()
    return served(version, access, confidential=now is not None and is_confidential(now))


def visible_only(rtype: str, criteria: list[Criterion], access: Access) -> list[Criterion]:
    """``criteria``, and if one is on a hidden element and the caller lacks admin, the condition that
    the record is not confidential."""
    if access.admin(rtype) or not any(c.field in HIDDEN_PARAMETERS.get(rtype, ()) for c in criteria):
        return list(criteria)
    return [*criteria, Criterion(SEARCH_FIELD, "any", (None, False))]


def role_security(doc: t.Mapping[str, t.Any], stored: t.Mapping[str, t.Any] | None) -> list[dict[str, t.Any]]:
    """A role's ``meta.security``, which the server keeps: the stored one (on a create, the normal
    ``M``) with the label the body sends, if it sends one: ``R`` or ``V`` as sent, any other as ``M``.
    A body that sends no label keeps the stored one, so that an update that leaves ``meta`` out
    never clears it."""
    base = list(stored["meta"].get("security", [])) if stored else [NORMAL]
    sent = labels(doc)
    if not sent:
        return base
    code = next((c for c in CONFIDENTIAL_CODES if c in sent), NORMAL["code"])
    return [{"system": CONFIDENTIALITY, "code": code}, *(c for c in base if c.get("system") != CONFIDENTIALITY)]


def check_label(rtype: str, confidential: bool, stored: t.Mapping[str, t.Any] | None, access: Access) -> None:
    """Only the type's admin may update a confidential record (``stored``; None on a create), or make
    a record ``confidential`` or not.

    :raises RequestRejected: 403 naming the scope.
    """
    if rtype not in HIDDEN:
        return
    was = stored is not None and is_confidential(stored)
    if was:
        access.require_admin_to(rtype, Msg.CONFIDENTIAL_UPDATE, type=rtype, id=stored["id"] if stored else None)
    if confidential != was:
        access.require_admin_to(rtype, Msg.LABEL_ADMIN_ONLY, f"{rtype}.meta.security", type=rtype)
