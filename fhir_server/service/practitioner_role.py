"""Create, update, validate and read HPI PractitionerRoles (SPEC.md §3.1-3.3, §3.7).

A create runs the DESIGN.md stages in order and stops after the first that finds problems:
``parse`` (400) → ``_check_structure`` (400) → ``_check_content`` (422: R4's base rules, profile,
business rules, contact points and references, all reported together; an HPI message wins over a
base one on the same element) → ``_complete`` → ``_reserve`` (422 duplicate)
→ ``store.roles.insert``. Database round trips: one to resolve the three references, and one to
reserve the business key and store the role and its first version (a single ordered command; three
on a server before MongoDB 8.0 or inside a transaction); issuing the id costs one per ``BLOCK``
creates. A reservation that fails costs three more, to tell a stored duplicate from a request in
flight and from debris (see :mod:`..store.roles`), and to reserve again.

Faults (DESIGN.md "Faults: every answer true"): the reservation and the writes after it run under a
lease, half of what is left of the request's time. A write whose outcome is unknown (network error,
write concern error, time limit) is waited out to the lease's end and read back from the primary:
stored, it is answered as stored; not stored, the reservation is released and the answer is a plain
503; if the read fails too, the 503 says the change may have been applied and the lease frees the
reservation. Nothing a failed request leaves blocks another beyond its lease.

An update reads the current version, checks the request against it (only telecom, messaging-address,
period and status reason may change), reserves a changed period, and replaces the current version
only if it is still the one the client named in If-Match (compare-and-set, else 409).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import typing as t
from dataclasses import dataclass

from .. import audit, exact_json
from .. import identifiers as ids
from ..definitions import DEFAULT_PROFILES
from ..instants import format_instant
from ..outcome import FhirError, Issue, Msg, RequestRejected, StoreUnavailable, issue
from ..store.deadline import finished_by, seconds_left
from ..store.errors import IdentifierTaken
from ..store.queries import Criterion, Page, TooManyCandidates
from ..store.roles import RoleIdTaken, StoredRole
from ..terminology import ROLE_CODES
from ..validation import (
    Target,
    assign_ranks,
    check_base,
    check_profile,
    check_references,
    check_required,
    check_role_period,
    check_structure,
    check_telecom,
    parse_json,
    point_at_live_records,
    without_overlap,
)
from ..validation.dates import is_current
from ..validation.fhirpath import ROLE
from ..validation.role_elements import MESSAGING_ADDRESS, STATUS_REASON, role_coding, status_reason_code
from .confidentiality import SEARCH_FIELD as CONFIDENTIAL_SEARCH_FIELD
from .confidentiality import check_label, is_confidential, role_security, served, served_version, visible_only
from .context import Context
from .history import parse_window
from .search import (
    MAX_REVINCLUDE,
    PARAMETERS,
    Query,
    condition_identifier,
    identifier_keys,
    is_number,
    one_match,
    parse_history,
    parse_search,
    search_fields,
    too_broad,
)
from .subsets import subset

# Roles ended as entered in error or duplicate hold no period: they never make another a duplicate.
NOT_RESERVING = {"enteredInError", "duplicate"}
HPI_ASSIGNER = {"reference": "Organization/G00001-G"}
# How often a conditional create that lost a race looks for the winner's role (about 0.9 s in all).
CONDITION_RETRIES = 9
# What an update may change (SPEC.md §3.2), and what the server owns (meta, active).
UPDATABLE = {"telecom", "period", "meta", "active"}
UPDATABLE_EXTENSIONS = {MESSAGING_ADDRESS, STATUS_REASON}
_REFERENCES = ("practitioner", "organization", "location")
_ELEMENT_ORDER = [
    "resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
    "modifierExtension", "identifier", "active", "period", "practitioner", "organization", "code",
    "specialty", "location", "healthcareService", "telecom", "availableTime", "notAvailable",
    "availabilityExceptions", "endpoint",
]


@dataclass(frozen=True)
class Written:
    """The outcome of a create or update: the current version, and whether this request made it."""

    resource: dict[str, t.Any]
    changed: bool


# --- create ------------------------------------------------------------------------------------------

def create_practitioner_role(body: bytes, ctx: Context, if_none_exist: str | None = None,
                             request: str | None = None, retried: bool = False) -> Written:
    """Validate ``body`` as a new HPI PractitionerRole and store it as version 1.

    With ``if_none_exist`` (``identifier=[system|]value``, an identifier of the body), a role that
    already has the identifier is returned instead (``changed`` False), also when a concurrent create
    stores it first. ``request`` tags the stored role with the request's Idempotency-Key scope;
    ``retried``: an earlier attempt with it may have stored the role, which is then returned.

    :raises RequestRejected: with every problem of the first stage that found any.
    :raises StoreUnavailable: the database failed; it says whether the role may have been stored.
    """
    doc = parse(body)
    _check_structure(doc, ctx)
    check_label(ROLE, is_confidential({"meta": {"security": role_security(doc, None)}}), None, ctx.access)
    token = condition_identifier(if_none_exist, doc) if if_none_exist is not None else None
    existing = _existing(token, ctx) or _stored_by(request if retried else None, ctx)
    if existing is not None:
        return Written(existing, False)
    resolved = _check_content(doc, ctx)
    first = _complete(doc, ctx.store.role_ids.issue(), resolved, ctx)
    try:
        resource = store_new_role(lambda rid: _complete(doc, rid, resolved, ctx), first, business_key(first, ctx), ctx, request)
    except (IdentifierTaken, RequestRejected) as e:
        # A concurrent conditional create of the same role may have won the period or the identifier.
        existing = _existing(token, ctx, wait=True)
        if existing is not None:
            return Written(existing, False)
        if isinstance(e, IdentifierTaken):
            raise RequestRejected(_in_use(e)) from None
        raise
    return Written(resource, True)


def store_new_role(make: t.Callable[[str], dict[str, t.Any]], resource: dict[str, t.Any], key: str, ctx: Context,
                   request: str | None = None, reserving: bool = True) -> dict[str, t.Any]:
    """Reserve the business key (if the role holds a period) and insert the role; return what was stored.

    The writes run under the reservation's lease (:func:`_lease`). If the insert's outcome is unknown,
    the request waits the lease out, when nothing it sent can still be applied, and reads back: the
    role stored is answered as stored; else its reservation is released and the answer is a plain 503,
    so an immediate retry finds nothing in its way. Only if that read fails too is the answer "may
    have been applied", and the reservation is left to its lease. An id already taken (the counter
    behind the records) moves the counter past the stored ids and takes a new one.

    :raises RequestRejected: 422 duplicate. :raises IdentifierTaken: another role has an identifier.
    """
    roles = ctx.store.roles
    for _ in range(3):
        holding = reserving and holds_period(resource)
        held, until = (roles.new_token(resource["id"]) if holding else None), _lease(ctx)
        provenance = audit.record(resource, ctx.access, audit.CREATE)
        try:
            # The reservation, the role and its version in one command.
            with finished_by(until):
                stored = roles.insert(resource, key, held, search_fields(resource), identifier_keys(resource), request,
                                      provenance, reserving=(ctx.now(), until) if holding else None)
            if not stored:  # the period is held: whose it is decides (a duplicate, a request in flight, debris)
                held, until = _reserve(key, resource, ctx)
                with finished_by(until):
                    roles.insert(resource, key, held, search_fields(resource), identifier_keys(resource), request, provenance)
            return resource
        except (IdentifierTaken, RoleIdTaken) as e:
            if held is not None:
                roles.release(key, held)
            if isinstance(e, IdentifierTaken):
                raise
        except StoreUnavailable as e:
            if e.may_be_applied:
                return _after_unknown_insert(resource, key, held, until, ctx, e)
            if held is not None:
                release_quietly(key, held, ctx)
            raise
        ctx.store.role_ids.skip_past_taken(ids.role_number(roles.highest_id() or resource["id"]))
        resource = make(ctx.store.role_ids.issue())
    raise RoleIdTaken(resource["id"])  # the counter keeps falling behind: a fault of the database, logged as a 500


def release_quietly(key: str, token: str, ctx: Context) -> None:
    """Release a reservation no role owns, trying twice; debris if both fail (see :func:`_reserve`)."""
    for _ in range(2):
        with contextlib.suppress(StoreUnavailable):
            ctx.store.roles.release(key, token)
            return


def _lease(ctx: Context) -> dt.datetime:
    """When a write's reservation ends: half of what is left of the request's time, so that after it
    the request still has time to learn what became of its write."""
    return _wall_clock() + dt.timedelta(seconds=max(0.0, seconds_left(ctx.store.timeout_seconds)) / 2)


def _after_unknown_insert(resource: dict[str, t.Any], key: str, held: str | None, until: dt.datetime, ctx: Context,
                          unknown: StoreUnavailable) -> dict[str, t.Any]:
    """What became of a role's insert whose answer was lost, learnt once its lease (and so the time
    limit of its write) is over: on a majority, it was stored (the answer is the role); on the primary
    alone, it may yet be rolled back (``unknown``: 503 "may have been applied"); on neither, it was
    not, and never will be (503 "unavailable", its reservation released)."""
    roles = ctx.store.roles
    time.sleep(max(0.0, (until - _wall_clock()).total_seconds()))
    try:
        committed, applied = roles.read_back(resource["id"])
        if committed is not None:
            roles.keep_version(committed)  # the insert may have failed before keeping it
            return committed.resource
        if applied is not None:
            raise unknown  # on the primary, not yet on a majority: it may stay, or be rolled back
        if held is not None:
            roles.release(key, held)
    except StoreUnavailable:
        raise unknown from None
    raise StoreUnavailable() from None  # surely not stored, and nothing left behind


def _stored_by(request: str | None, ctx: Context) -> dict[str, t.Any] | None:
    """The role an earlier attempt of this request stored, if any, with its version kept (the attempt
    may have failed between storing the role and keeping its version)."""
    stored = ctx.store.roles.get_by_request(request) if request else None
    if stored is None:
        return None
    ctx.store.roles.keep_version(stored)
    return served(with_active(stored.resource, ctx), ctx.access)  # it may have been labelled since


def _in_use(taken: IdentifierTaken) -> Issue:
    return issue(Msg.IDENTIFIER_IN_USE, f"{ROLE}.identifier", identifier=taken.identifier, key=taken.key)


def _existing(token: str | None, ctx: Context, wait: bool = False) -> dict[str, t.Any] | None:
    """The role with identifier ``token``, if any, as the caller may read it. With ``wait``, give a
    create that has reserved the period but not yet stored its role a moment to finish.

    A conditional create that finds a role answers with it, which is a read: it needs the read scope
    (``PractitionerRole.r`` or ``.a``), else 403, and a confidential role is served redacted.
    """
    if token is None:
        return None
    for attempt in range(CONDITION_RETRIES if wait else 1):
        stored = ctx.store.roles.find_by_identifier(token)
        found = one_match([s.resource for s in stored])
        if found is not None:
            ctx.access.require(ROLE, "read")
            ctx.store.roles.keep_version(stored[0])  # the create that stored it may have failed before keeping it
            return served(with_active(found, ctx), ctx.access)
        if wait:
            time.sleep(0.02 * (attempt + 1))
    return None


# --- update ------------------------------------------------------------------------------------------

def _check_id(doc: dict[str, t.Any], role_id: str) -> None:
    """"A PractitionerRole update must contain: The PractitionerRole id" (SPEC.md §3.2, 422 as the IG's
    other update errors); one that differs from the URL's is a malformed request (400)."""
    if "id" not in doc:
        raise RequestRejected(issue(Msg.ROLE_ID_REQUIRED, f"{ROLE}.id"))
    if doc["id"] != role_id:
        raise RequestRejected(issue(Msg.ID_MISMATCH, f"{ROLE}.id", url_id=role_id))


def update_practitioner_role(role_id: str, body: bytes, if_match: str | None, ctx: Context) -> Written:
    """Apply the allowed changes of ``body`` to role ``role_id`` as a new version, if ``if_match``
    names the current one. A request that changes nothing makes no new version.

    :raises RequestRejected: 428 without If-Match, 404, 409 on a stale version, else 400/422.
    """
    doc = parse(body)
    _check_structure(doc, ctx)
    expected = parse_if_match(if_match)
    _check_id(doc, role_id)
    stored = _get(role_id, ctx, deciding=True)
    if stored.vid != expected:
        raise RequestRejected(issue(Msg.VERSION_CONFLICT, f"{ROLE}.meta.versionId"))
    security = role_security(doc, stored.resource)
    check_label(ROLE, is_confidential({"meta": {"security": security}}), stored.resource, ctx.access)
    resource = _check_update(doc, stored, ctx)
    if _same_content(resource, stored.resource) and security == stored.resource["meta"].get("security", []):
        return Written(with_active(stored.resource, ctx), False)
    meta = {**stored.resource["meta"], "versionId": str(stored.vid + 1), "lastUpdated": format_instant(ctx.now()),
            "security": security}
    resource = in_element_order({**resource, "meta": meta})
    held, until = _holding(stored, resource, ctx)
    new_held = held is not None and held != stored.held
    provenance = audit.record(resource, ctx.access, audit.UPDATE)

    def write(held: str | None, until: dt.datetime, reserving: bool) -> str:
        try:
            with finished_by(until):
                return ctx.store.roles.replace(stored, resource, held, search_fields(resource), provenance,
                                               (ctx.now(), until) if reserving else None)
        except StoreUnavailable as e:
            changed = _after_unknown_replace(stored, resource, held if held != stored.held else None, until, ctx, e)
            return "replaced" if changed else "lost"

    # The new period's reservation, the role and its versions in one command.
    outcome = write(held, until, new_held)
    if outcome == "held":  # the new period is held: whose it is decides (a duplicate, a request in flight, debris)
        try:
            held, until = _reserve(stored.key, resource, ctx)
        except StoreUnavailable:
            raise StoreUnavailable() from None  # the role itself was not sent: surely unchanged
        outcome = write(held, until, False)
    if outcome == "lost":
        if new_held:
            ctx.store.roles.release(stored.key, t.cast(str, held))
        raise RequestRejected(issue(Msg.VERSION_CONFLICT, f"{ROLE}.meta.versionId"))
    if stored.held is not None and held != stored.held:
        # The update is done whatever becomes of this: a period left held is debris (no role owns it,
        # and its lease is over) that the next create it blocks clears.
        release_quietly(stored.key, stored.held, ctx)
    return Written(resource, True)


def parse_if_match(value: str | None) -> int:
    """The version an If-Match names: ``W/"3"``, ``"3"`` or ``3`` (SPEC.md §6 shows a bare integer)."""
    if value is None:
        raise RequestRejected(issue(Msg.IF_MATCH_REQUIRED))
    text = value.strip().removeprefix("W/").strip('"')
    if not is_number(text):
        raise RequestRejected(issue(Msg.IF_MATCH_INVALID))
    return int(text)


def _check_update(doc: dict[str, t.Any], stored: StoredRole, ctx: Context) -> dict[str, t.Any]:
    """Check an update against the stored version; return the new version's content (meta aside)."""
    issues = _check_profiles(doc, ctx) + check_role_period(doc) + check_telecom(doc.get("telecom", []), ctx.today())
    issues += _unchanged_elements(doc, stored.resource, ctx)
    issues = without_overlap(check_base(doc), issues)
    if issues:
        raise RequestRejected(issues)
    # The extensions that may not change are checked equal to the stored ones: take the client's list.
    resource = {k: v for k, v in stored.resource.items() if k not in UPDATABLE and k != "extension"}
    for name, value in (("extension", doc.get("extension")), ("period", doc.get("period")), ("telecom", doc.get("telecom"))):
        if value:
            resource[name] = assign_ranks(value) if name == "telecom" else value
    resource["active"] = stored.resource.get("active", True)
    return in_element_order(with_active(resource, ctx))


def _unchanged_elements(doc: dict[str, t.Any], stored: dict[str, t.Any], ctx: Context) -> list[Issue]:
    """An issue for each element the update may not change but does (SPEC.md §3.2)."""
    issues = []
    official = {"system": ids.ROLE_SYSTEM, "value": stored["id"]}
    if not any(official.items() <= i.items() for i in doc.get("identifier", [])):
        issues.append(issue(Msg.ROLE_IDENTIFIER_REQUIRED, f"{ROLE}.identifier"))
    elif identifier_keys(doc) != identifier_keys(stored):
        issues.append(issue(Msg.NOT_UPDATABLE, f"{ROLE}.identifier"))
    changed = _changed_references(doc, stored, ctx)
    names = (set(doc) | set(stored)) - UPDATABLE - {"identifier", "extension", "resourceType", "id", *_REFERENCES}
    changed += [n for n in sorted(names) if not exact_json.same(_comparable(n, doc.get(n)), _comparable(n, stored.get(n)))]
    fixed_extensions = [[e for e in r.get("extension", []) if e.get("url") not in UPDATABLE_EXTENSIONS] for r in (doc, stored)]
    if not exact_json.same(*fixed_extensions):  # 1.50 is not 1.5
        changed.append("extension")
    return issues + [issue(Msg.NOT_UPDATABLE, f"{ROLE}.{name}") for name in changed]


def _comparable(name: str, value: t.Any) -> t.Any:
    """The role code is compared by its codings' systems and codes: display and text may differ."""
    if name == "code" and value:
        return sorted((c.get("system") or "", c.get("code") or "") for code in value for c in code.get("coding", []))
    return value


def _changed_references(doc: dict[str, t.Any], stored: dict[str, t.Any], ctx: Context) -> list[str]:
    """References may name the same record differently (a dormant id, an absolute URL, a display):
    resolve them, but only if they are not literally what is stored."""
    def literal(resource: dict[str, t.Any], name: str) -> str | None:
        ref = resource.get(name)
        ref = (ref or [None])[0] if isinstance(ref, list) else ref
        return ref.get("reference") if isinstance(ref, dict) else None

    differ = [n for n in _REFERENCES if literal(doc, n) != literal(stored, n)]
    if not differ:
        return []
    resolved, _ = check_references({n: doc[n] for n in differ if n in doc}, ctx.store.references.resolve)
    return [n for n in differ if n not in resolved or resolved[n].key != literal(stored, n)]


def _same_content(new: dict[str, t.Any], current: dict[str, t.Any]) -> bool:
    def content(r: dict[str, t.Any]) -> dict[str, t.Any]:
        return {k: v for k, v in r.items() if k not in ("meta", "active")}
    return exact_json.same(content(new), content(current))


def _holding(stored: StoredRole, resource: dict[str, t.Any], ctx: Context) -> tuple[str | None, dt.datetime]:
    """The token of the reservation the new version will own (None if it holds no period; a new one
    if its period is new or its dates changed), and when the replace must be done by."""
    if not holds_period(resource):
        return None, _lease(ctx)
    if stored.held is not None and _dates(stored.resource) == _dates(resource):
        return stored.held, _lease(ctx)
    return ctx.store.roles.new_token(resource["id"]), _lease(ctx)


def _after_unknown_replace(stored: StoredRole, resource: dict[str, t.Any], new_held: str | None, until: dt.datetime,
                           ctx: Context, unknown: StoreUnavailable) -> bool:
    """As :func:`_after_unknown_insert`: wait out the lease, then read back. True if this update is
    the current version (its history kept), False if the version moved on without it."""
    roles = ctx.store.roles

    def is_this_update(version: StoredRole | None) -> t.TypeGuard[StoredRole]:
        return version is not None and version.resource["meta"] == resource["meta"] and version.held == (new_held or stored.held)

    if unknown.may_be_applied:
        time.sleep(max(0.0, (until - _wall_clock()).total_seconds()))
    try:
        current, applied = roles.read_back(stored.resource["id"])
        if is_this_update(current):
            roles.keep_version(stored)
            roles.keep_version(current)
            return True
        if is_this_update(applied):
            raise unknown  # on the primary, not yet on a majority: it may stay, or be rolled back
        if new_held is not None:
            roles.release(stored.key, new_held)
    except StoreUnavailable:
        raise unknown from None
    if current is not None and current.vid == stored.vid:
        raise StoreUnavailable() from None  # surely not applied, and nothing left behind
    return False


def _dates(resource: dict[str, t.Any]) -> tuple[str | None, str | None]:
    period = resource.get("period") or {}
    return period.get("start"), period.get("end")


# --- validate ----------------------------------------------------------------------------------------

def validate_practitioner_role(body: bytes, ctx: Context, role_id: str | None = None, mode: str | None = None) -> list[Issue]:
    """Every problem a create (or, in mode update, an update of role ``role_id``) of the resource
    would meet, with nothing stored or reserved. ``body`` is the resource, or a Parameters resource
    with it as ``resource`` (and perhaps ``mode``). Only an unreadable request is raised (400, 404).
    """
    doc = parse(body)
    if isinstance(doc, dict) and doc.get("resourceType") == "Parameters":
        doc, mode = _unwrap_parameters(doc, mode)
    mode = mode or ("update" if role_id else "create")
    if mode not in ("create", "update") or (mode == "update") != (role_id is not None):
        raise RequestRejected(issue(Msg.VALIDATE_MODE_INVALID, mode=mode))
    try:
        _check_structure(doc, ctx)
        if role_id is None:
            check_label(ROLE, is_confidential({"meta": {"security": role_security(doc, None)}}), None, ctx.access)
            resource = point_at_live_records(doc, _check_content(doc, ctx))
            taken = ctx.store.roles.identifier_holder(identifier_keys(doc), None)
            if taken is not None:
                raise RequestRejected(_in_use(taken))
        else:
            stored = _get(role_id, ctx)
            check_label(ROLE, is_confidential({"meta": {"security": role_security(doc, stored.resource)}}), stored.resource, ctx.access)
            _check_id(doc, role_id)
            resource = _check_update(doc, stored, ctx)
        if holds_period(resource) and ctx.store.roles.would_clash(business_key(resource, ctx), resource.get("period"), role_id):
            raise RequestRejected(issue(Msg.DUPLICATE, ROLE))
    except RequestRejected as e:
        if e.status in (403, 404):
            raise
        return e.issues
    return []


def _unwrap_parameters(doc: dict[str, t.Any], mode: str | None) -> tuple[t.Any, str | None]:
    given = doc.get("parameter")
    params: list[t.Any] = given if isinstance(given, list) else []
    resources = [p["resource"] for p in params if isinstance(p, dict) and p.get("name") == "resource" and "resource" in p]
    modes = [p.get("valueCode") for p in params if isinstance(p, dict) and p.get("name") == "mode"]
    if len(resources) != 1:
        raise RequestRejected(issue(Msg.VALIDATE_RESOURCE_REQUIRED))
    return resources[0], mode or (modes[0] if modes else None)


# --- read --------------------------------------------------------------------------------------------

def read_practitioner_role(role_id: str, ctx: Context) -> dict[str, t.Any]:
    return served(with_active(_get(role_id, ctx).resource, ctx), ctx.access)


def read_version(role_id: str, vid: str, ctx: Context) -> dict[str, t.Any]:
    """A version of the role, redacted if it or the current version is confidential (see
    :mod:`.confidentiality`): for a caller without admin, the current version is read first."""
    wellformed = ids.is_valid_role_id(role_id) and is_number(vid) and len(vid) <= 9
    current = None if ctx.access.admin(ROLE) else _get(role_id, ctx)
    if current is not None and wellformed and current.vid == int(vid):
        return served(current.resource, ctx.access)
    resource = ctx.store.roles.version(role_id, int(vid)) if wellformed else None
    if resource is None:
        _get(role_id, ctx)  # 404 for the role itself first
        raise RequestRejected(issue(Msg.VERSION_NOT_FOUND, type=ROLE, id=role_id, vid=vid))
    return served_version(resource, lambda: current.resource if current else None, ctx.access)


def search_practitioner_roles(args: t.Iterable[tuple[str, str]], strict: bool, ctx: Context) -> tuple[Query, Page, list[dict[str, t.Any]]]:
    """A page of the roles a search matches, and the records its ``_include`` names (SPEC.md §3.4).

    Without ``PractitionerRole.a``: inactive roles are left out (SPEC.md §6), judged as the ``active``
    parameter judges them, by the database, so that totals and pages stay true; a criterion on an
    element hidden from the caller does not match a confidential role; the roles are served as the
    caller may see them, and ``_include`` follows only the references left. Each type included needs
    its read scope (403 naming it).
    """
    query = parse_search(ROLE, args, strict, ctx)
    for name in dict.fromkeys(query.includes):
        ctx.access.require(t.cast(str, _include_type(name)), "read")
    try:
        page = ctx.store.roles.search(_role_criteria(query.criteria, ctx), query.offset, query.count, query.sort, query.counted)
    except TooManyCandidates as e:
        raise too_broad(e) from None
    page = Page(page.total, [served(with_active(r, ctx), ctx.access) for r in page.resources])
    # _include follows the references the caller may see; a subset is taken after, so that it can
    # only leave out more.
    keys = {ref["reference"] for r in page.resources for name in query.includes
            for ref in _as_list(r.get(name)) if ref and "reference" in ref}
    unread = sorted(keys - query.records.keys())
    read = {k: query.records[k] for k in keys & query.records.keys()}
    read.update((f"{r['resourceType']}/{r['id']}", r) for r in (ctx.store.references.get_many(unread) if unread else []))
    included = [read[k] for k in sorted(keys) if k in read]
    page = Page(page.total, [subset(r, query.summary, query.elements) for r in page.resources])
    return query, page, [served(r, ctx.access) for r in included]


def _as_list(value: t.Any) -> list[t.Any]:
    return value if isinstance(value, list) else [value]


def _role_criteria(criteria: list[Criterion], ctx: Context) -> list[Criterion]:
    """The criteria of a role search as the caller may make it: without ``PractitionerRole.a``, a
    criterion on a hidden element does not match a confidential role, and inactive roles are left
    out."""
    criteria = visible_only(ROLE, criteria, ctx.access)
    if not ctx.access.admin(ROLE) and Criterion("active", "active_on", (ctx.today(), True)) not in criteria:
        criteria.append(Criterion("active", "active_on", (ctx.today(), True)))
    return criteria


def roles_pointing_at(query: Query, matches: list[dict[str, t.Any]], ctx: Context) -> list[dict[str, t.Any]]:
    """The roles a ``_revinclude`` adds to a page of ``matches`` (Practitioners, Organizations or
    Locations), judged as a role search by the same parameter would judge them (needs
    ``PractitionerRole.read``; inactive roles, and confidential roles found by a hidden element,
    only with ``PractitionerRole.a``), served as the caller may see them; at most
    :data:`.search.MAX_REVINCLUDE`, with a warning on ``query`` if there are more."""
    if not query.revincludes:
        return []
    ctx.access.require(ROLE, "read")
    if not matches:
        return []
    found: dict[str, dict[str, t.Any]] = {}
    for name in dict.fromkeys(query.revincludes):
        criteria = _role_criteria([Criterion(name, "any", tuple(r["id"] for r in matches))], ctx)
        try:
            page = ctx.store.roles.search(criteria, 0, MAX_REVINCLUDE + 1 - len(found), counted=False)
        except TooManyCandidates as e:
            raise too_broad(e) from None
        found.update((r["id"], r) for r in page.resources)
        if len(found) > MAX_REVINCLUDE:
            query.warnings.append(issue(Msg.SEARCH_REVINCLUDE_CUT, limit=MAX_REVINCLUDE))
            break
    return [served(with_active(r, ctx), ctx.access) for r in list(found.values())[:MAX_REVINCLUDE]]


def _include_type(element: str) -> str | None:
    return next((p.target for p in PARAMETERS[ROLE] if p.name == element), None)


def role_history(role_id: str | None, args: t.Iterable[tuple[str, str]], ctx: Context) -> tuple[Query, Page]:
    """Versions newest first, of one role (404 if unknown) or of all (``role_id`` None), a page at a
    time from the key the previous page's next link carries; within ``_since`` and ``_at`` (.history)."""
    args = list(args)
    query = parse_history(args, one_role=role_id is not None)
    window = parse_window(args, query, one_role=role_id is not None)
    current = _get(role_id, ctx).resource if role_id is not None else None
    page = ctx.store.roles.history(role_id, query.after, query.count, query.counted, ctx.now(), window.since, window.at)
    return query, Page(page.total, _served_versions(page.resources, current, ctx), page.after)


def _served_versions(versions: list[dict[str, t.Any]], current: dict[str, t.Any] | None, ctx: Context) -> list[dict[str, t.Any]]:
    """Versions as the caller may see them (:func:`.confidentiality.served_version`): the current
    versions of the roles they belong to, if needed, are read in one round trip."""
    if ctx.access.admin(ROLE) or all(is_confidential(v) for v in versions):
        return [served(v, ctx.access) for v in versions]
    if current is not None:
        labelled = {current["id"]} if is_confidential(current) else set()
    else:
        labelled = ctx.store.roles.flagged(sorted({v["id"] for v in versions}), CONFIDENTIAL_SEARCH_FIELD)
    return [served(v, ctx.access, confidential=v["id"] in labelled) for v in versions]


def with_active(resource: dict[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    """``active`` is derived from the period, whose relation to today changes with time. A record with
    no period keeps what was stored: the HPI's confidential R00000015-C is inactive without one."""
    if "period" not in resource:
        return resource
    return {**resource, "active": is_current(resource["period"], ctx.today())}


def _get(role_id: str, ctx: Context, deciding: bool = False) -> StoredRole:
    stored = ctx.store.roles.get(role_id, deciding) if ids.is_valid_role_id(role_id) else None
    if stored is None:
        raise RequestRejected(issue(Msg.NOT_FOUND, f"{ROLE}.id", id=role_id))
    return stored


# --- shared steps ------------------------------------------------------------------------------------

def business_key(resource: dict[str, t.Any], ctx: Context) -> str:
    """The duplicate rule's key (SPEC.md §3.5): live CPN, organisation, facility and role code."""
    coding = role_coding(resource, ctx.definitions.value_sets[ROLE_CODES]) if resource.get("code") else {}
    org = resource.get("organization", {}).get("reference", "")
    location = (resource.get("location") or [{}])[0].get("reference", "")
    return "|".join([resource["practitioner"]["reference"], org, location, coding.get("system", ""), coding.get("code", "")])


def holds_period(resource: dict[str, t.Any]) -> bool:
    return status_reason_code(resource) not in NOT_RESERVING


def parse(body: bytes) -> t.Any:
    doc, issues = parse_json(body)
    if issues:
        raise RequestRejected(issues)
    return doc


def _check_structure(doc: t.Any, ctx: Context) -> None:
    issues = check_structure(doc, ROLE, ctx.limits)
    if issues:
        raise RequestRejected(issues)


def _check_content(doc: dict[str, t.Any], ctx: Context) -> dict[str, Target]:
    issues = _check_profiles(doc, ctx) + check_required(doc) + check_role_period(doc)
    issues += check_telecom(doc.get("telecom", []), ctx.today())
    resolved, reference_issues = check_references(doc, ctx.store.references.resolve)
    issues = without_overlap(check_base(doc), issues + reference_issues)
    if issues:
        raise RequestRejected(issues)
    return resolved


def _check_profiles(doc: dict[str, t.Any], ctx: Context) -> list[Issue]:
    """Check against the profiles ``meta.profile`` claims (each must be one the server knows), else the default."""
    claimed = doc.get("meta", {}).get("profile", [])
    profiles, unknown = ctx.definitions.profiles_for(claimed, ROLE)
    known = ", ".join(ctx.definitions.known_profiles(ROLE))
    issues = [issue(Msg.PROFILE_UNKNOWN, f"{ROLE}.meta.profile[{claimed.index(url)}]", profile=url, type=ROLE, known=known)
              for url in unknown]
    return issues + [found for profile in profiles for found in check_profile(doc, profile)]


def _complete(doc: dict[str, t.Any], role_id: str, resolved: dict[str, Target], ctx: Context) -> dict[str, t.Any]:
    """The record to store: server-assigned id, identifier, meta and active; references to live
    records; contact ranks filled in. Whatever the client sent for the server's parts is replaced."""
    resource = point_at_live_records(doc, resolved)
    resource.update(
        id=role_id,
        meta={"versionId": "1", "lastUpdated": format_instant(ctx.now()), "profile": _profiles(doc),
              "security": role_security(doc, None)},
        identifier=[  # the profile's RI slice first: its identifier slicing is openAtEnd
            {"use": "official", "system": ids.ROLE_SYSTEM, "value": role_id, "assigner": HPI_ASSIGNER},
            *(i for i in doc.get("identifier", []) if i.get("system") != ids.ROLE_SYSTEM),
        ],
        active=is_current(doc.get("period"), ctx.today()),
    )
    if "telecom" in doc:
        resource["telecom"] = assign_ranks(doc["telecom"])
    return in_element_order(resource)


def _profiles(doc: dict[str, t.Any]) -> list[str]:
    return list(doc.get("meta", {}).get("profile", [])) or [DEFAULT_PROFILES[ROLE]]


def in_element_order(resource: dict[str, t.Any]) -> dict[str, t.Any]:
    """Keys in the order of the FHIR definition (a primitive's ``_x`` after ``x``), as FHIR JSON shows them."""
    rank = {name: i for i, name in enumerate(_ELEMENT_ORDER)}
    return dict(sorted(resource.items(), key=lambda kv: (rank.get(kv[0].lstrip("_"), len(rank)), kv[0].startswith("_"))))


def _reserve(key: str, resource: dict[str, t.Any], ctx: Context) -> tuple[str, dt.datetime]:
    """Reserve the role's period under a new token with a lease (:func:`_lease`), and return the token
    and the lease's end; 422 if a stored role holds an overlap.

    A period held by no stored role is debris once its lease is over (cleared at once) or a request in
    flight until then (waited for, polling, while this request's deadline allows; else 503 with
    Retry-After). No fixed wait: what a failed request leaves blocks others no longer than it ran.
    """
    roles, period, rid = ctx.store.roles, resource.get("period"), resource["id"]
    token = roles.new_token(rid)
    pause = 0.02
    while not _try_reserve(key, period, rid, token, until := _lease(ctx), ctx):
        now = _wall_clock()
        blockers = roles.blockers(key, period, rid, now)
        if any(b.state == "stored" for b in blockers):
            raise RequestRejected(issue(Msg.DUPLICATE, ROLE))
        if debris := [b for b in blockers if b.state == "debris"]:
            roles.clear(key, debris)
        else:  # a request in flight (or the blocker is gone already): wait while the deadline allows
            live = [b.until for b in blockers if b.state == "live"]
            # A lease is at most half of a request's time, so a request after it has time to wait one out.
            if live and (min(live) - now).total_seconds() > seconds_left(ctx.store.timeout_seconds) / 2:
                raise FhirError(issue(Msg.KEY_IN_FLIGHT, ROLE))
            time.sleep(pause)
            pause = min(2 * pause, 0.2)
    return token, until


def _try_reserve(key: str, period: dict[str, t.Any] | None, rid: str, token: str, until: dt.datetime, ctx: Context) -> bool:
    """One reservation attempt. If it fails, it leaves nothing: a reservation that may have been made
    is released once nothing sent can still arrive (its lease), and the role is surely not stored."""
    try:
        with finished_by(until):
            return ctx.store.roles.reserve(key, period, rid, token, ctx.now(), until)
    except StoreUnavailable as e:
        if e.may_be_applied:
            time.sleep(max(0.0, (until - _wall_clock()).total_seconds()))
            release_quietly(key, token, ctx)
        raise StoreUnavailable() from None


def _wall_clock() -> dt.datetime:
    # Leases are compared with real time, not the context's clock (which tests may fix at a date).
    return dt.datetime.now(dt.timezone.utc)
