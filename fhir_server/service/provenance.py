"""Reading the audit trail: the Provenance of each version written (see :mod:`..audit`), by its id or
by its target. Who may read it (the admin scope of the target's type) is decided before this runs
(:func:`..auth.authorize`).

``GET /Provenance/{id}`` is one lookup, the id naming the version; ``GET /Provenance?target=Type/id``
lists a record's Provenances newest first, paged as other searches (``_count``, ``_offset``), and
``target=Type/id/_history/n`` the one of that version.
"""

from __future__ import annotations

import typing as t

from .. import audit
from .. import identifiers as ids
from ..outcome import Issue, Msg, RequestRejected, issue
from ..store.queries import Page
from .context import Context
from .search import Query, parse_paging

ROLE = "PractitionerRole"
_IGNORED = ("_format", "_pretty", "_count", "_offset")


def read_provenance(pid: str, ctx: Context) -> dict[str, t.Any]:
    """:raises RequestRejected: 404 for an id that names no version written."""
    target = audit.parse_provenance_id(pid)
    found = _one(*target, ctx) if target else None
    if found is None or found["id"] != pid:  # not by a dormant id: a Provenance has one id
        raise RequestRejected(issue(Msg.NOT_FOUND, "Provenance.id", id=pid))
    return found


def read_version(pid: str, vid: str, ctx: Context) -> dict[str, t.Any]:
    """A Provenance never changes: version 1 is the only one."""
    found = read_provenance(pid, ctx)
    if vid != found["meta"]["versionId"]:
        raise RequestRejected(issue(Msg.VERSION_NOT_FOUND, type="Provenance", id=pid, vid=vid))
    return found


def search_provenance(args: t.Iterable[tuple[str, str]], strict: bool, ctx: Context) -> tuple[Query, Page]:
    """A page of the Provenances of the one ``target``, newest first.

    :raises RequestRejected: 400 without a target (or with several), for one that is not a reference
        to a record of an audited type, or for an unknown parameter when ``strict``.
    """
    args = list(args)
    query = parse_paging(args)
    targets, issues = [], list[Issue]()
    for name, value in args:
        if name == "target":
            parsed = audit.parse_target(value)
            if parsed is None:
                issues.append(issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value))
            else:
                targets.append(parsed)
                query.used.append((name, value))
        elif name not in _IGNORED and strict:
            issues.append(issue(Msg.SEARCH_PARAM_UNKNOWN, name=name, type="Provenance"))
    if issues:
        raise RequestRejected(issues)
    if len(targets) != 1:
        raise RequestRejected(issue(Msg.SEARCH_TARGET_REQUIRED, types=", ".join(audit.TARGET_TYPES)))
    rtype, rid, vid = targets[0]
    if vid is not None:
        found = _one(rtype, rid, vid, ctx)
        return query, Page(1 if found else 0, [found] if found and query.offset == 0 and query.count else [])
    if rtype == ROLE:
        if not ids.is_valid_role_id(rid):
            return query, Page(0, [])
        page = ctx.store.roles.provenances(rid, query.offset, query.count)
        return query, Page(page.total, [audit.provenance(ROLE, rid, r) for r in page.resources])
    found_all = ctx.store.references.provenances(f"{rtype}/{rid}")
    if found_all is None:
        return query, Page(0, [])
    key, records = found_all
    live = key.split("/", 1)[1]  # a dormant id finds the record; its Provenances name its live id
    return query, Page(len(records), [audit.provenance(rtype, live, r) for r in records[query.offset:query.offset + query.count]])


def _one(rtype: str, rid: str, vid: int, ctx: Context) -> dict[str, t.Any] | None:
    """The Provenance of version ``vid`` of ``rtype/rid``, if it was written."""
    if rtype == ROLE:
        written = ctx.store.roles.provenance(rid, vid) if ids.is_valid_role_id(rid) else None
        return audit.provenance(ROLE, rid, written) if written else None
    found_all = ctx.store.references.provenances(f"{rtype}/{rid}")
    if found_all is None:
        return None
    key, records = found_all
    written = next((r for r in records if r["vid"] == vid), None)
    return audit.provenance(rtype, key.split("/", 1)[1], written) if written else None
