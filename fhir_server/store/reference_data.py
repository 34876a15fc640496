"""Practitioner, Organization and Location records that PractitionerRoles point at.

One collection for all three, ``reference_resources``: ``{_id: "Practitioner/98ZZQJ", vid, refs: [...],
name, search, resource, provenance: [...]}``. ``refs`` holds ``Type/value`` for every HPI identifier of the record, live and
dormant, so a role's three references resolve in one round trip, dormant ids included. A unique index
on ``refs`` keeps any HPI identifier on one record only, also between racing writes. ``search`` holds
the values the search parameters match (see :mod:`..service.search`).

Only the current version is kept. Updates are compare-and-set on ``vid``, as for roles: of two updates
from one version, one matches and the other matches nothing (409). ``provenance`` holds the record of
who wrote each version (:func:`..audit.record`, served as a Provenance), oldest first, each pushed by
the write that made its version: at some 150 bytes each, about 100,000 versions fit in MongoDB's 16 MB.
"""

from __future__ import annotations

import contextlib
import typing as t
from dataclasses import dataclass

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from .. import identifiers as ids
from ..validation.references import Target
from .errors import IdentifierTaken, translate_errors, translate_write_errors
from .queries import Criterion, Page, find_page, to_filter
from .transactions import Joined

_SYSTEMS = {
    "Practitioner": ids.PERSON_SYSTEM,
    "Organization": ids.ORGANISATION_SYSTEM,
    "Location": ids.FACILITY_SYSTEM,
}
_DUPLICATE_KEY = 11000
_LOOKUP = 25


def _hpi_identifiers(resource: dict[str, t.Any]) -> dict[str, str]:
    """``Type/value`` → ``system|value`` for each identifier of the type's HPI system (or an alias)."""
    rtype = resource["resourceType"]
    return {f"{rtype}/{i['value']}": f"{i['system']}|{i['value']}" for i in resource.get("identifier", [])
            if i.get("system") in ids.SYSTEM_ALIASES[_SYSTEMS[rtype]] and i.get("value")}


def _refs(resource: dict[str, t.Any]) -> list[str]:
    return sorted({f"{resource['resourceType']}/{resource['id']}", *_hpi_identifiers(resource)})


def _of_type(rtype: str) -> dict[str, t.Any]:
    # Keys are "Type/id": the records of a type are one range of _id ("0" follows "/"), so no type
    # field is needed and the range is served by the _id index.
    return {"_id": {"$gte": f"{rtype}/", "$lt": f"{rtype}0"}}


def display_name(resource: dict[str, t.Any]) -> str | None:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    if name:
        first = name[0]
        return first.get("text") or " ".join([*first.get("prefix", []), *first.get("given", []), first.get("family", "")]).strip()
    return None


@dataclass(frozen=True)
class StoredReference:
    resource: dict[str, t.Any]

    @property
    def key(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"

    @property
    def vid(self) -> int:
        return int(self.resource["meta"]["versionId"])


def _refused(e: BulkWriteError) -> set[int]:
    """The positions of the writes an unordered bulk write refused: by a unique index, or for a reason
    the same write made alone gives again (and says). Writes not known to be kept raise."""
    if e.details.get("writeConcernErrors"):
        raise e
    return {int(err["index"]) for err in e.details["writeErrors"]}


def _is_version(doc: dict[str, t.Any] | None, resource: dict[str, t.Any]) -> bool:
    return doc is not None and doc["vid"] == int(resource["meta"]["versionId"]) \
        and doc["resource"]["meta"]["lastUpdated"] == resource["meta"]["lastUpdated"]


def reference_doc(resource: dict[str, t.Any], search: dict[str, t.Any]) -> dict[str, t.Any]:
    """Everything stored beside the resource is derived from it, so an update keeps it in step."""
    return {"vid": int(resource["meta"]["versionId"]), "refs": _refs(resource), "name": display_name(resource),
            "search": search, "resource": resource}


class ReferenceStore:
    def __init__(self, db: Joined) -> None:
        # One write a create or update, acknowledged once in the journal (DURABLE).
        self._resources: Collection[t.Any] = db.durable("reference_resources")
        # Reads that decide a write (a create's references, an update's version, a condition, an
        # identifier's holder) go to the primary (see .client.deciding).
        self._deciding: Collection[t.Any] = db.deciding("reference_resources")

    def ensure_indexes(self) -> None:
        # Databases prepared before identifiers had to be unique hold a plain index of the same name.
        # Another process may drop it first; creating the unique one then tells whether all is well.
        info = self._resources.index_information()
        if "refs_1" in info and not info["refs_1"].get("unique"):
            with contextlib.suppress(OperationFailure):
                self._resources.drop_index("refs_1")
        self._resources.create_index([("refs", ASCENDING)], unique=True)
        self._resources.create_index([("search.identifier", ASCENDING)])
        self._resources.create_index([("search._lastUpdated", ASCENDING)])  # searches by when records changed

    @translate_errors
    def is_empty(self) -> bool:
        return self._resources.find_one({}, {"_id": 1}) is None

    # --- what PractitionerRoles need -----------------------------------------------------------------

    @translate_errors
    def resolve(self, keys: list[str]) -> dict[str, Target]:
        """Each of ``keys`` (``Type/id``, live or dormant) that exists → the live record."""
        found: dict[str, Target] = {}
        for doc in self._deciding.find({"refs": {"$in": keys}}, {"refs": 1, "name": 1, "resource": 1}):
            target = Target(doc["_id"], doc.get("name"), doc["resource"])
            found.update((k, target) for k in keys if k in doc["refs"])
        return found

    @translate_errors
    def get_many(self, keys: list[str]) -> list[dict[str, t.Any]]:
        """The records with these live keys (``Type/id``), in that order."""
        found = {d["_id"]: d["resource"] for d in self._resources.find({"_id": {"$in": keys}}, {"resource": 1})}
        return [found[k] for k in keys if k in found]

    # --- reads ---------------------------------------------------------------------------------------

    @translate_errors
    def get(self, key: str) -> StoredReference | None:
        """The record whose live key is ``key`` (``Type/id``)."""
        doc = self._deciding.find_one({"_id": key}, {"resource": 1})
        return StoredReference(doc["resource"]) if doc else None

    @translate_errors
    def find(self, key: str) -> StoredReference | None:
        """The record ``key`` names, by its live id or a dormant one."""
        doc = self._resources.find_one({"refs": key}, {"resource": 1})
        return StoredReference(doc["resource"]) if doc else None

    @translate_errors
    def find_by_identifier(self, rtype: str, token: str) -> list[dict[str, t.Any]]:
        """The records of ``rtype`` with an identifier matching ``token`` (``[system|]value``); at most
        two, enough to tell one from several."""
        query = {**_of_type(rtype), "search.identifier": token}
        return [d["resource"] for d in self._deciding.find(query, {"resource": 1}).limit(2)]

    @translate_errors
    def search(self, rtype: str, criteria: list[Criterion], offset: int, count: int,
               sort: t.Sequence[tuple[str, bool]] = (), counted: bool = True) -> Page:
        """A page of the records of ``rtype`` matching all ``criteria``, in id order, and how many match.

        ``_id`` is looked up by key and ``identifier`` through its index; what the database could only
        apply by scanning is applied here, to at most :data:`.queries.MAX_CANDIDATES` records.

        :raises TooManyCandidates: more records than that before the conditions applied here.
        """
        by_id = next((c for c in criteria if c.field == "_id" and c.kind == "any"), None)
        query, rest = to_filter([c for c in criteria if c is not by_id], "search.")
        # The key is "Type/id": a lookup by key, where the range of the type is read by scanning.
        query = {**query, **({"_id": {"$in": [f"{rtype}/{v}" for v in by_id.values]}} if by_id else _of_type(rtype))}
        return find_page(self._resources, query, rest, offset, count, sort, counted)

    # --- writes --------------------------------------------------------------------------------------

    @translate_write_errors
    def insert(self, resource: dict[str, t.Any], search: dict[str, t.Any], provenance: dict[str, t.Any]) -> None:
        """Store a new record with the Provenance of its first version.

        :raises IdentifierTaken: another record has one of its HPI identifiers (or its id); the unique
            index decides, so of two racing creates with one identifier only one is stored.
        """
        key = f"{resource['resourceType']}/{resource['id']}"
        try:
            self._resources.insert_one({"_id": key, **reference_doc(resource, search), "provenance": [provenance]})
        except DuplicateKeyError:
            taken = self._taken(resource, by_self=False)
            if taken is None:
                raise  # cannot happen while records are never deleted
            raise taken from None

    @translate_write_errors
    def replace(self, previous: StoredReference, resource: dict[str, t.Any], search: dict[str, t.Any],
                provenance: dict[str, t.Any]) -> bool:
        """Make ``resource`` the current version, adding its ``provenance``, if ``previous`` still is;
        False if another update won.

        :raises IdentifierTaken: the update adds an HPI identifier another record has.
        """
        try:
            result = self._resources.update_one({"_id": previous.key, "vid": previous.vid},
                                                {"$set": reference_doc(resource, search), "$push": {"provenance": provenance}})
        except DuplicateKeyError:
            taken = self._taken(resource, by_self=True)
            if taken is None:
                raise
            raise taken from None
        return result.matched_count == 1

    @translate_errors
    def get_stored(self, keys: list[str]) -> dict[str, StoredReference]:
        """The records with these live keys (``Type/id``), as :meth:`get` gives each, for a batch being
        loaded. Asked :data:`_LOOKUP` keys at a time: SecantusDB matches a long ``$in`` against each
        document it finds, which costs more than the extra round trips."""
        found: dict[str, StoredReference] = {}
        for start in range(0, len(keys), _LOOKUP):
            for doc in self._deciding.find({"_id": {"$in": keys[start:start + _LOOKUP]}}, {"resource": 1}):
                found[doc["_id"]] = StoredReference(doc["resource"])
        return found

    @translate_write_errors
    def write_many(self, creates: list[tuple[dict[str, t.Any], dict[str, t.Any], dict[str, t.Any]]],
                   updates: list[tuple[StoredReference, dict[str, t.Any], dict[str, t.Any], dict[str, t.Any]]],
                   ) -> tuple[set[int], set[int]]:
        """Make each :meth:`insert` of ``creates`` (``(resource, search, provenance)``) and each
        :meth:`replace` of ``updates`` (``(previous, resource, search, provenance)``), each exactly
        as those write it, in one unordered bulk write for each kind. Returns the positions in
        ``creates`` and in ``updates`` of the writes not made: an identifier another record holds,
        another update that won, or any other refusal; the caller makes them again one by one, each
        with the outcome (or error) it has alone."""
        failed_creates: set[int] = set()
        if creates:
            docs = [{"_id": f"{r['resourceType']}/{r['id']}", **reference_doc(r, search), "provenance": [provenance]}
                    for r, search, provenance in creates]
            try:
                self._resources.insert_many(docs, ordered=False)
            except BulkWriteError as e:
                failed_creates = _refused(e)
        failed_updates: set[int] = set()
        if updates:
            ops = [UpdateOne({"_id": previous.key, "vid": previous.vid},
                             {"$set": reference_doc(r, search), "$push": {"provenance": provenance}})
                   for previous, r, search, provenance in updates]
            try:
                matched = self._resources.bulk_write(ops, ordered=False).matched_count
            except BulkWriteError as e:
                failed_updates = _refused(e)
                matched = e.details["nMatched"]
            if matched < len(updates) - len(failed_updates):
                # Another update won somewhere (the result does not say where): ours are the
                # records now at our version with our time.
                pending = [n for n in range(len(updates)) if n not in failed_updates]
                now = {d["_id"]: d for d in self._deciding.find(
                    {"_id": {"$in": [updates[n][0].key for n in pending]}}, {"vid": 1, "resource.meta.lastUpdated": 1})}
                failed_updates |= {n for n in pending if not _is_version(now.get(updates[n][0].key), updates[n][1])}
        return failed_creates, failed_updates

    def _taken(self, resource: dict[str, t.Any], by_self: bool) -> IdentifierTaken | None:
        """Which other record holds an HPI identifier of ``resource``, after the unique index said one
        does. On an update (``by_self``) the record with the resource's own key is not the other."""
        key = f"{resource['resourceType']}/{resource['id']}"
        mine = {key: f"{_SYSTEMS[resource['resourceType']]}|{resource['id']}", **_hpi_identifiers(resource)}
        query: dict[str, t.Any] = {"refs": {"$in": sorted(mine)}}
        if by_self:
            query["_id"] = {"$ne": key}
        other = self._deciding.find_one(query, {"refs": 1})
        if other is None:
            return None
        shared = next(ref for ref in sorted(mine) if ref in other["refs"])
        return IdentifierTaken(mine[shared], other["_id"])

    # --- who wrote them ------------------------------------------------------------------------------

    @translate_errors
    def provenances(self, key: str) -> tuple[str, list[dict[str, t.Any]]] | None:
        """The live key of the record ``key`` names (``Type/id``, live or dormant) and the records of who
        wrote its versions, newest first; None if there is no such record."""
        doc = self._resources.find_one({"refs": key}, {"provenance": 1})
        return (doc["_id"], list(reversed(doc.get("provenance", [])))) if doc else None

    # --- loading -------------------------------------------------------------------------------------

    @translate_errors
    def load(self, records: list[tuple[dict[str, t.Any], dict[str, t.Any], dict[str, t.Any]]]) -> int:
        """Insert each ``(resource, search, provenance)`` not already stored; records present are left as
        they are, so that two processes loading at once, or a repeated load, change nothing. Returns
        how many were inserted."""
        docs = [{"_id": f"{r['resourceType']}/{r['id']}", **reference_doc(r, search), "provenance": [provenance]}
                for r, search, provenance in records]
        if not docs:
            return 0
        try:
            return len(self._resources.insert_many(docs, ordered=False).inserted_ids)
        except BulkWriteError as e:
            if any(err["code"] != _DUPLICATE_KEY for err in e.details["writeErrors"]):
                raise
            return int(e.details["nInserted"])

    @translate_errors
    def unversioned(self) -> list[dict[str, t.Any]]:
        """Records stored before reference data had versions and search fields (an older database)."""
        return [d["resource"] for d in self._resources.find({"vid": {"$exists": False}}, {"resource": 1})]

    @translate_errors
    def complete(self, resource: dict[str, t.Any], search: dict[str, t.Any]) -> None:
        """Give an unversioned record its version, search fields and refs, unless something else did."""
        self._resources.update_one({"_id": f"{resource['resourceType']}/{resource['id']}", "vid": {"$exists": False}},
                                   {"$set": reference_doc(resource, search)})
