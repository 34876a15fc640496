"""Read, search, create and update the Practitioners, Organizations and Locations that PractitionerRoles
point at (SPEC.md §2, §4): the reference data, maintained over FHIR.

A record's id is the value of its official HPI identifier (hpi-person-id, hpi-organisation-id or
hpi-facility-id); former ids are kept as dormant identifiers (use ``old``) and still name the record.
A create runs ``parse`` (400) → ``check_structure`` (400) → ``_check_identifiers`` (422: R4's base rules
and the HPI identifiers, all problems together) → ``store.references.insert``, where a unique index keeps each HPI identifier, live or
dormant, on one record (422). An update is compare-and-set on the version the client names in
If-Match, as for roles (409 if another update won). Only the current version is kept.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .. import audit, exact_json
from .. import identifiers as ids
from ..instants import format_instant
from ..outcome import Issue, Msg, RequestRejected, issue
from ..store.errors import IdentifierTaken
from ..store.queries import Page, TooManyCandidates
from ..store.reference_data import StoredReference
from ..validation import check_base, check_structure, without_overlap
from .confidentiality import check_label, is_confidential, served
from .context import Context
from .practitioner_role import Written, parse, parse_if_match, roles_pointing_at
from .search import Query, condition_identifier, one_match, parse_search, search_fields, too_broad
from .subsets import subset


@dataclass(frozen=True)
class Kind:
    """What identifies a record of one type: its HPI identifier system and that id's format check."""

    system: str
    is_valid: t.Callable[[str], bool]

    @property
    def name(self) -> str:
        return self.system.rsplit("/", 1)[-1]  # "hpi-person-id", as messages call it


KINDS = {
    "Practitioner": Kind(ids.PERSON_SYSTEM, ids.is_valid_cpn),
    "Organization": Kind(ids.ORGANISATION_SYSTEM, ids.is_valid_organisation_id),
    "Location": Kind(ids.FACILITY_SYSTEM, ids.is_valid_facility_id),
}
# Set by the server on every write; the rest of meta (profile, security labels) is the client's.
_SERVER_META = ("versionId", "lastUpdated")


def official_id(rtype: str, doc: dict[str, t.Any]) -> str | None:
    """The id :func:`create_reference` would give ``doc``: the value of its one official HPI
    identifier, if well formed. None otherwise, whatever the shape of ``doc`` (a create then says
    what is wrong), so that a caller can ask before deciding between create and update."""
    systems = ids.SYSTEM_ALIASES[KINDS[rtype].system]
    identifiers = doc.get("identifier")
    values = [i.get("value") for i in (identifiers if isinstance(identifiers, list) else [])
              if isinstance(i, dict) and i.get("use") == "official" and isinstance(i.get("system"), str)
              and i["system"] in systems]
    value = values[0] if len(values) == 1 else None
    return value if isinstance(value, str) and KINDS[rtype].is_valid(value) else None


# --- read and search -----------------------------------------------------------------------------------

def read_reference(rtype: str, rid: str, ctx: Context) -> dict[str, t.Any]:
    """The record ``rid`` names: its id, or a dormant id, which answers with the live record."""
    found = ctx.store.references.find(f"{rtype}/{rid}") if KINDS[rtype].is_valid(rid) else None
    if found is None:
        raise RequestRejected(issue(Msg.NOT_FOUND, f"{rtype}.id", id=rid))
    return served(found.resource, ctx.access)


def read_version(rtype: str, rid: str, vid: str, ctx: Context) -> dict[str, t.Any]:
    """Only the current version is kept; it is served at its version URL too, which is where the
    ``Location`` of a create and every ``Content-Location`` point."""
    resource = read_reference(rtype, rid, ctx)
    if resource["meta"]["versionId"] != vid:
        raise RequestRejected(issue(Msg.VERSION_NOT_FOUND, type=rtype, id=rid, vid=vid))
    return resource


def search_references(rtype: str, args: t.Iterable[tuple[str, str]], strict: bool,
                      ctx: Context) -> tuple[Query, Page, list[dict[str, t.Any]]]:
    """A page of the records a search matches, and the roles its ``_revinclude`` adds. Each type holds
    as many records as the HPI has (every practitioner of the country), so a search must name a
    parameter an index serves: ``identifier``, ``_id`` (the record's key), or a ``_lastUpdated``
    range, which reads the records it matches."""
    query = parse_search(rtype, args, strict, ctx)
    if not any(c.field in ("identifier", "_id") or (c.field == "_lastUpdated" and c.values[2]) for c in query.criteria):
        raise RequestRejected(issue(Msg.SEARCH_NOT_SELECTIVE, type=rtype))
    try:
        page = ctx.store.references.search(rtype, query.criteria, query.offset, query.count, query.sort, query.counted)
    except TooManyCandidates as e:
        raise too_broad(e) from None
    matches = [served(r, ctx.access) for r in page.resources]
    included = roles_pointing_at(query, matches, ctx)
    return query, Page(page.total, [subset(r, query.summary, query.elements) for r in matches], page.after), included


# --- create and update -----------------------------------------------------------------------------

def create_reference(rtype: str, body: bytes, ctx: Context, if_none_exist: str | None = None) -> Written:
    """Store ``body`` as version 1 of a new record, its id the value of its official HPI identifier.

    With ``if_none_exist`` (``identifier=[system|]value``), a record that already has the identifier
    is returned instead (``changed`` False). When the condition names the record's HPI identifier this
    holds also against a concurrent create: whichever stores first takes the identifier, and the
    other collides on it and looks again. (Two creates conditional on another identifier, such as an
    NZBN, but with different HPI ids may both be stored: only HPI identifiers are unique.)

    :raises RequestRejected: with every problem of the first stage that found any.
    """
    doc = _parse(rtype, body, ctx)
    _check_access(rtype, doc, None, ctx)
    # Any identifier may be the condition: the record's own HPI id is unique whatever it names.
    token = condition_identifier(if_none_exist) if if_none_exist is not None else None
    existing = _existing(rtype, token, ctx)
    if existing is not None:
        return Written(existing, False)
    planned = _planned_create(rtype, doc, ctx)
    try:
        ctx.store.references.insert(planned.resource, planned.search, planned.provenance)
    except IdentifierTaken as taken:
        existing = _existing(rtype, token, ctx)
        if existing is not None:
            return Written(existing, False)
        raise RequestRejected(_identifier_in_use(rtype, doc, taken)) from None
    return Written(planned.resource, True)


def update_reference(rtype: str, rid: str, body: bytes, if_match: str | None, ctx: Context) -> Written:
    """Make ``body`` the next version of record ``rid`` if ``if_match`` names the current one. The
    official identifier may not change; dormant ones may be added. Content equal to the current
    version's makes no new version.

    :raises RequestRejected: 428 without If-Match, 404, 409 on a stale version, else 400/422.
    """
    planned = checked_update(rtype, rid, body, if_match, lambda: ctx.store.references.get(f"{rtype}/{rid}"), ctx)
    if isinstance(planned, StoredReference):
        return Written(planned.resource, False)
    assert planned.previous is not None
    try:
        replaced = ctx.store.references.replace(planned.previous, planned.resource, planned.search, planned.provenance)
    except IdentifierTaken as taken:
        raise RequestRejected(_identifier_in_use(rtype, planned.doc, taken)) from None
    if not replaced:
        raise RequestRejected(issue(Msg.VERSION_CONFLICT, f"{rtype}.meta.versionId"))
    return Written(planned.resource, True)


# --- checked, not yet written (also for loading many at once) -----------------------------------------

@dataclass(frozen=True)
class Planned:
    """A write that passed every check of a create (``previous`` None) or an update of ``previous``:
    the version to store, its search fields and who wrote it, as the write stores them."""

    doc: dict[str, t.Any]  # as sent, for naming the identifier if the write finds it in use
    resource: dict[str, t.Any]
    search: dict[str, t.Any]
    provenance: dict[str, t.Any]
    previous: StoredReference | None = None


def checked_create(rtype: str, body: bytes, ctx: Context) -> Planned:
    """The checks of an unconditional :func:`create_reference`, all but the store's unique index.

    :raises RequestRejected: as :func:`create_reference`.
    """
    doc = _parse(rtype, body, ctx)
    _check_access(rtype, doc, None, ctx)
    return _planned_create(rtype, doc, ctx)


def checked_update(rtype: str, rid: str, body: bytes, if_match: str | None,
                   stored_now: t.Callable[[], StoredReference | None], ctx: Context) -> Planned | StoredReference:
    """The checks of :func:`update_reference`, all but the compare-and-set: the next version, or the
    stored record if the content is the same. ``stored_now`` gives the record ``rid`` as stored (by
    its live id), read only once the body and If-Match are found well formed.

    :raises RequestRejected: as :func:`update_reference`.
    """
    doc = _parse(rtype, body, ctx)
    expected = parse_if_match(if_match)
    if doc.get("id") != rid:
        raise RequestRejected(issue(Msg.ID_MISMATCH, f"{rtype}.id", url_id=rid))
    # An update names the record by its id: a dormant id only finds it for reading.
    stored = stored_now() if KINDS[rtype].is_valid(rid) else None
    if stored is None:
        raise RequestRejected(issue(Msg.NOT_FOUND, f"{rtype}.id", id=rid))
    if stored.vid != expected:
        raise RequestRejected(issue(Msg.VERSION_CONFLICT, f"{rtype}.meta.versionId"))
    _check_access(rtype, doc, stored.resource, ctx)
    official = _check_identifiers(rtype, doc, stored)
    if exact_json.same(_content(doc), _content(stored.resource)):  # 1.50 is not 1.5
        return stored
    resource = _complete(doc, official, stored.vid + 1, ctx)
    return Planned(doc, resource, search_fields(resource), audit.record(resource, ctx.access, audit.UPDATE), stored)


def _planned_create(rtype: str, doc: dict[str, t.Any], ctx: Context) -> Planned:
    official = _check_identifiers(rtype, doc)
    resource = _complete(doc, official, 1, ctx)
    return Planned(doc, resource, search_fields(resource), audit.record(resource, ctx.access, audit.CREATE))


# --- steps -----------------------------------------------------------------------------------------

def _existing(rtype: str, token: str | None, ctx: Context) -> dict[str, t.Any] | None:
    """The record a conditional create finds, as the caller may read it. The create answers with it,
    which is a read: it needs the type's read scope (``T.r`` or ``T.a``), else 403."""
    found = one_match(ctx.store.references.find_by_identifier(rtype, token)) if token else None
    if found is None:
        return None
    ctx.access.require(rtype, "read")
    return served(found, ctx.access)


def _check_access(rtype: str, doc: dict[str, t.Any], stored: dict[str, t.Any] | None, ctx: Context) -> None:
    """The rules of :mod:`..auth.scopes` that depend on the record: only the type's admin may update a
    confidential record or set or clear its label, and add, remove or move a dormant identifier (a
    merge: the dormant id then names this record, and whatever pointed at it follows). 403 otherwise."""
    check_label(rtype, is_confidential(doc), stored, ctx.access)
    if _dormant_ids(rtype, doc) != (_dormant_ids(rtype, stored) if stored else set()):
        ctx.access.require_admin_to(rtype, Msg.MERGE_ADMIN_ONLY, f"{rtype}.identifier", type=rtype)


def _dormant_ids(rtype: str, resource: dict[str, t.Any]) -> set[str]:
    systems = ids.SYSTEM_ALIASES[KINDS[rtype].system]
    identifiers = resource.get("identifier")
    return {value for i in (identifiers if isinstance(identifiers, list) else [])
            if isinstance(i, dict) and i.get("use") == "old" and i.get("system") in systems
            and isinstance(value := i.get("value"), str)}


def _parse(rtype: str, body: bytes, ctx: Context) -> dict[str, t.Any]:
    doc = parse(body)
    issues = check_structure(doc, rtype, ctx.limits)
    if issues:
        raise RequestRejected(issues)
    return t.cast(dict[str, t.Any], doc)


def _check_identifiers(rtype: str, doc: dict[str, t.Any], stored: StoredReference | None = None) -> str:
    """Check the HPI identifiers: exactly one official (the id), dormant ones (use old) well formed,
    no other use; on an update, the official one unchanged. Returns the official value.

    :raises RequestRejected: naming every problem (422).
    """
    kind, issues = KINDS[rtype], list[Issue]()
    official: list[str] = []  # the values of official identifiers, well formed or not
    for n, ident in enumerate(doc.get("identifier", [])):
        if ident.get("system") not in ids.SYSTEM_ALIASES[kind.system]:
            continue  # other identifiers (NZBN, registration numbers …) are the record's own business
        at, value, use = f"{rtype}.identifier[{n}]", ident.get("value", ""), ident.get("use")
        if use not in ("official", "old"):
            issues.append(issue(Msg.REFERENCE_ID_USE, f"{at}.use", name=kind.name))
        if not kind.is_valid(value):
            issues.append(issue(Msg.REFERENCE_ID_INVALID, f"{at}.value", name=kind.name, value=value))
        if use == "official":
            official.append(value)
    if not official:
        issues.append(issue(Msg.REFERENCE_ID_REQUIRED, f"{rtype}.identifier", name=kind.name, type=rtype))
    elif len(official) > 1:
        issues.append(issue(Msg.REFERENCE_ID_TOO_MANY, f"{rtype}.identifier", name=kind.name, type=rtype))
    elif stored is not None and official[0] != stored.resource["id"]:
        issues.append(issue(Msg.REFERENCE_ID_CHANGED, f"{rtype}.identifier", name=kind.name, type=rtype,
                            id=stored.resource["id"]))
    issues = without_overlap(check_base(doc), issues)
    if issues:
        raise RequestRejected(issues)
    return official[0]


def _complete(doc: dict[str, t.Any], official: str, vid: int, ctx: Context) -> dict[str, t.Any]:
    """The record to store: id from the official identifier, version and time set by the server;
    whatever id the client sent is replaced."""
    meta = {**{k: v for k, v in doc.get("meta", {}).items() if k not in _SERVER_META},
            "versionId": str(vid), "lastUpdated": format_instant(ctx.now())}
    rest = {k: v for k, v in doc.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": doc["resourceType"], "id": official, "meta": meta, **rest}


def _content(resource: dict[str, t.Any]) -> dict[str, t.Any]:
    """What an update may change: all but the id and the version the server sets."""
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in _SERVER_META}
    rest = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return {**rest, "meta": meta} if meta else rest


def _identifier_in_use(rtype: str, doc: dict[str, t.Any], taken: IdentifierTaken) -> Issue:
    value = taken.identifier.rsplit("|", 1)[-1]
    at = next((n for n, i in enumerate(doc.get("identifier", [])) if i.get("value") == value), None)
    expression = f"{rtype}.identifier" + (f"[{at}]" if at is not None else "")
    return issue(Msg.IDENTIFIER_IN_USE, expression, identifier=taken.identifier, key=taken.key)
