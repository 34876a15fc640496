"""What must hold of the stored records, checked over the whole database (``fhir-server check``), and
the mends that are safe to make.

- Every period a business key holds belongs to a role that holds it, and every role that holds a
  period has it in its key (:mod:`.store.roles`); a period whose lease is live is a request in flight,
  not a problem.
- The role id counter has handed out every stored role's number (:mod:`.store.role_ids`), so it never
  issues one again.
- Every version of every record is present: a role's from its first (1, or the version it was loaded
  at, whose Provenance is a CREATE) to its current one in the versions collection; a reference
  record's version matches its resource and each version since its first has its Provenance.
- No identifier is on two records (roles' identifier keys; reference records' HPI identifiers).

Safe mends: re-reserve a role's missing period under its own token, drop a period nobody holds whose
lease is over, raise the counter, re-write a missing current version of a role from its current
document. The rest need a person.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections import defaultdict
from dataclasses import dataclass

from . import audit
from .identifiers import role_number
from .migrations import SCHEMA_VERSION, mismatch
from .store import Store


@dataclass(frozen=True)
class Problem:
    text: str
    #: Mends the problem; returns False if it could not after all (the database changed meanwhile).
    mend: t.Callable[[], bool] | None = None


def find_problems(store: Store, now: dt.datetime) -> list[Problem]:
    """Every broken invariant, one :class:`Problem` each. A database at another schema version is
    one problem: the rest cannot be judged until it is migrated."""
    found = store.schema.version()
    if found != SCHEMA_VERSION:
        return [Problem(t.cast(str, mismatch(found)))]
    roles = {r["_id"]: r for r in store.inventory.roles()}
    references = store.inventory.references()
    return [*_reservations(store, roles, now), *_counter(store, roles), *_role_versions(store, roles),
            *_reference_versions(references), *_shared_identifiers(roles, references)]


def _reservations(store: Store, roles: dict[str, dict[str, t.Any]], now: dt.datetime) -> t.Iterator[Problem]:
    keys = store.inventory.reservations()
    for key, periods in keys.items():
        for p in periods:
            role = roles.get(p.get("role", ""))
            token = p.get("by")
            if token is None:
                yield Problem(f"reservation of role {p.get('role')} in key {key} has no token (stored before migration 1)")
                continue
            if role is not None and role.get("held") == token and role.get("key") == key:
                continue
            if p.get("until") is not None and p["until"] > now:
                continue  # a request in flight; its lease ends it if it fails
            owner = "no such role" if role is None else f"role {role['_id']} holds {role.get('held')}"
            yield Problem(f"reservation {token} in key {key} is held by nobody ({owner})",
                          _drop(store, key, token))
    for rid, role in roles.items():
        token = role.get("held")
        if token and not any(p.get("by") == token for p in keys.get(role["key"], [])):
            yield Problem(f"role {rid} holds reservation {token} in key {role['key']}, which is missing",
                          _reserve(store, rid, token, now))


def _drop(store: Store, key: str, token: str) -> t.Callable[[], bool]:
    def mend() -> bool:
        store.roles.release(key, token)
        return True
    return mend


def _reserve(store: Store, rid: str, token: str, now: dt.datetime) -> t.Callable[[], bool]:
    def mend() -> bool:
        stored = store.roles.get(rid, deciding=True)
        if stored is None or stored.held != token:
            return False
        # No lease: the role is stored. False if another role's period overlaps (a duplicate now).
        return store.roles.reserve(stored.key, stored.resource.get("period"), rid, token, now)
    return mend


def _counter(store: Store, roles: dict[str, dict[str, t.Any]]) -> t.Iterator[Problem]:
    numbers = [role_number(rid) for rid in roles if rid[:1] == "R" and rid[1:9].isdigit()]
    counter = store.role_ids.highest_issued()
    if numbers and counter < max(numbers):
        highest = max(numbers)

        def mend() -> bool:
            store.role_ids.skip_past(highest)
            return True
        yield Problem(f"role id counter is at {counter}, below issued role number {highest}: it would issue ids again", mend)


def _first_version(kept: dict[int, str | None]) -> int:
    """A record's first version this database ever held: the one it was created or loaded at."""
    created = [vid for vid, op in kept.items() if op == audit.CREATE]
    return min(created) if created else 1


def _role_versions(store: Store, roles: dict[str, dict[str, t.Any]]) -> t.Iterator[Problem]:
    versions = store.inventory.role_versions()
    for rid, role in roles.items():
        current = int(role.get("vid", 0))
        kept = dict(versions.get(rid, {}))
        if role.get("op"):
            kept.setdefault(current, role["op"])  # the current document holds its version's Provenance too
        missing = [v for v in range(_first_version(kept), current + 1) if v not in versions.get(rid, {})]
        for vid in missing:
            if vid == current:
                yield Problem(f"role {rid} version {vid} (its current one) is missing from the versions", _keep_current(store, rid, vid))
            else:
                yield Problem(f"role {rid} version {vid} is missing from the versions")


def _keep_current(store: Store, rid: str, vid: int) -> t.Callable[[], bool]:
    def mend() -> bool:
        stored = store.roles.get(rid, deciding=True)
        if stored is None or stored.vid != vid:
            return False
        store.roles.keep_version(stored)
        return True
    return mend


def _reference_versions(references: list[dict[str, t.Any]]) -> t.Iterator[Problem]:
    for ref in references:
        key = ref["_id"]
        if ref["vid"] is None or str(ref["vid"]) != str(ref["version"]):
            yield Problem(f"{key} is stored as version {ref['vid']} but its resource is version {ref['version']}")
            continue
        if not ref["written"]:
            continue  # loaded before writes were audited: no Provenance to check
        kept: dict[int, str | None] = {int(vid): op for vid, op in ref["written"] if vid is not None}
        missing = [v for v in range(_first_version(kept), int(ref["vid"]) + 1) if v not in kept]
        if missing:
            yield Problem(f"{key} has no record of who wrote version(s) {', '.join(map(str, missing))}")


def _shared_identifiers(roles: dict[str, dict[str, t.Any]], references: list[dict[str, t.Any]]) -> t.Iterator[Problem]:
    holders: dict[str, list[str]] = defaultdict(list)
    for rid, role in roles.items():
        for identifier in set(role.get("identifiers") or []):
            holders[identifier].append(rid)
    for ref in references:
        for identifier in set(ref["refs"]):
            holders[identifier].append(ref["_id"])
    for identifier, records in sorted(holders.items()):
        if len(records) > 1:
            yield Problem(f"identifier {identifier} is on {len(records)} records: {', '.join(sorted(records))}")
