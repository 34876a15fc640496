"""PractitionerRole records and the business-key reservations that keep them free of duplicates.

A role is one document in ``practitioner_roles``: ``{_id: role id, vid, key, resource}``.

Duplicates and overlaps (SPEC.md §3.5) are prevented without transactions: each business key
(live CPN, organisation, facility, role code) has one document in ``role_keys`` holding the periods of
the roles that use it. Reserving a period is one conditional upsert on that document, atomic in any
MongoDB: it matches only if no held period overlaps, so of N racing creates exactly one wins, and the
others' upsert collides on ``_id`` (DuplicateKeyError), which means "duplicate".

A process that dies between reserving and inserting leaves a period held for a role that does not
exist; :meth:`RoleStore.clear_abandoned` frees such periods when they next stand in a create's way.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .errors import translate_errors

# Open ends of a period sort before and after every YYYY-MM-DD date.
OPEN_START = "0000-00-00"
OPEN_END = "9999-12-31"


class RoleStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._roles = db["practitioner_roles"]
        self._keys = db["role_keys"]

    @translate_errors
    def get(self, role_id: str) -> dict[str, t.Any] | None:
        doc = self._roles.find_one({"_id": role_id}, {"resource": 1})
        return doc["resource"] if doc else None

    @translate_errors
    def insert(self, resource: dict[str, t.Any], key: str | None) -> None:
        self._roles.insert_one({"_id": resource["id"], "vid": int(resource["meta"]["versionId"]), "key": key, "resource": resource})

    @translate_errors
    def insert_existing(self, resources: list[dict[str, t.Any]], keys: list[str | None]) -> None:
        """Load records that already have ids and versions (reference data); ones present are kept."""
        for resource, key in zip(resources, keys):
            try:
                self.insert(resource, key)
            except DuplicateKeyError:
                pass

    @translate_errors
    def reserve(self, key: str, period: dict[str, t.Any] | None, role_id: str, at: dt.datetime) -> bool:
        """Hold ``period`` of business key ``key`` for ``role_id``; False if a held period overlaps.

        Overlap is ``s1 < e2 and s2 < e1`` ("two periods are not overlapping if one starts on the same
        day the other ends"), plus two identical single-day periods, tracked by ``day``.
        """
        start = (period or {}).get("start", OPEN_START)
        end = (period or {}).get("end", OPEN_END)
        held = {"s": start, "e": end, "role": role_id, "day": start if start == end else None, "at": at}
        query: dict[str, t.Any] = {"_id": key, "periods": {"$not": {"$elemMatch": {"s": {"$lt": end}, "e": {"$gt": start}}}}}
        if start == end:
            query["periods.day"] = {"$ne": start}
        try:
            self._keys.update_one(query, {"$push": {"periods": held}}, upsert=True)
        except DuplicateKeyError:
            return False
        return True

    @translate_errors
    def clear_abandoned(self, key: str, reserved_before: dt.datetime) -> bool:
        """Free the periods of ``key`` reserved before ``reserved_before`` by roles never stored.
        Returns True if it freed any."""
        doc = self._keys.find_one({"_id": key}) or {"periods": []}
        old = [p["role"] for p in doc["periods"] if p["at"] < reserved_before]
        stored = set(self._roles.distinct("_id", {"_id": {"$in": old}})) if old else set()
        abandoned = [role for role in old if role not in stored]
        if abandoned:
            self._keys.update_one({"_id": key}, {"$pull": {"periods": {"role": {"$in": abandoned}}}})
        return bool(abandoned)
