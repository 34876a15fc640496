"""Every record as stored, read in a stream for a backup, and written back in batches into an empty
database (see :mod:`..backup`).

Reads follow the ``_id`` index and hold one cursor batch at a time, never the collection. Writes go
in batches of :data:`BATCH`; a restore that fails part way is undone with :meth:`BackupStore.clear`,
which the caller may do because it refused any database that held records to begin with.
"""

from __future__ import annotations

import functools
import typing as t

from pymongo import ASCENDING, InsertOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from .errors import (
    is_unavailable,
    translate_errors,
    translate_write_errors,
    unavailable,
)
from .reference_data import reference_doc
from .roles import current_doc, version_doc

P = t.ParamSpec("P")
R = t.TypeVar("R")
#: The collections that hold records; the others hold credentials, caches and counters.
RECORDS = ("practitioner_roles", "practitioner_role_versions", "role_keys", "reference_resources")
BATCH = 500
#: A role to store as new: ``(resource, key, held, search, identifiers, provenance)``.
NewRole = tuple[dict[str, t.Any], str, str | None, dict[str, t.Any], list[str], dict[str, t.Any]]
_DUPLICATE_KEY = 11000


class RecordClash(Exception):
    """Two records of a restore share an id or an identifier: the files do not come from one database."""


def _unique(fn: t.Callable[P, R]) -> t.Callable[P, R]:
    """A duplicate key among the records written becomes :class:`RecordClash`, naming the key."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except BulkWriteError as e:
            clash = next((err for err in e.details.get("writeErrors", []) if err.get("code") == _DUPLICATE_KEY), None)
            if clash is None:
                raise
            raise RecordClash(f"{clash.get('keyValue') or clash.get('errmsg')}") from None
    return wrapper


def _streamed(cursor: t.Iterable[dict[str, t.Any]]) -> t.Iterator[dict[str, t.Any]]:
    """``cursor``'s documents, a database failure while reading on becoming StoreUnavailable."""
    try:
        yield from cursor
    except PyMongoError as e:
        if is_unavailable(e):
            raise unavailable(e, wrote=False) from e
        raise


class BackupStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._db = db

    # --- reading ------------------------------------------------------------------------------------

    @translate_errors
    def holding_records(self) -> list[str]:
        """The record collections that hold a document: a restore goes only where there are none."""
        return [name for name in RECORDS if self._db[name].find_one({}, {"_id": 1}) is not None]

    def roles(self) -> t.Iterator[dict[str, t.Any]]:
        """Each role's current document (``resource``, ``provenance``), in id order."""
        return _streamed(self._db["practitioner_roles"].find({}, {"resource": 1, "provenance": 1}).sort("_id", ASCENDING))

    def role_versions(self) -> t.Iterator[dict[str, t.Any]]:
        """Every version of every role (``resource``, ``provenance``), the current ones included."""
        return _streamed(self._db["practitioner_role_versions"].find({}, {"resource": 1, "provenance": 1}).sort("_id", ASCENDING))

    def references(self, rtype: str) -> t.Iterator[dict[str, t.Any]]:
        """The Practitioners, Organizations or Locations (``resource``, ``provenance``: a list, oldest first)."""
        query = {"_id": {"$gte": f"{rtype}/", "$lt": f"{rtype}0"}}
        return _streamed(self._db["reference_resources"].find(query, {"resource": 1, "provenance": 1}).sort("_id", ASCENDING))

    # --- writing into an empty database ------------------------------------------------------------

    @translate_write_errors
    @_unique
    def insert_role_versions(self, versions: list[dict[str, t.Any]]) -> None:
        """Keep these role versions (resources), without who wrote them (:meth:`add_role_provenance`)."""
        if versions:
            self._db["practitioner_role_versions"].insert_many([version_doc(v, None) for v in versions], ordered=False)

    @translate_write_errors
    @_unique
    def insert_roles(self, roles: list[tuple[dict[str, t.Any], str, str | None, dict[str, t.Any], list[str]]]) -> None:
        """Store each ``(resource, key, held, search, identifiers)`` as a current role, and keep it
        among the versions if the versions read did not have it.

        :raises pymongo.errors.BulkWriteError: two roles with one id or one identifier.
        """
        if not roles:
            return
        self._db["practitioner_roles"].insert_many(
            [{**current_doc(r, key, held, search, None), "identifiers": ids} for r, key, held, search, ids in roles])
        versions = [version_doc(r, None) for r, *_ in roles]
        self._db["practitioner_role_versions"].bulk_write(
            [UpdateOne({"_id": v["_id"]}, {"$setOnInsert": v}, upsert=True) for v in versions], ordered=False)

    @translate_write_errors
    @_unique
    def insert_new_roles(self, roles: list[NewRole]) -> None:
        """Store each ``(resource, key, held, search, identifiers, provenance)`` as a role at its first
        version with who wrote it, as a create stores it: for generated records (``fhir-server bench
        --stored``), two writes a batch where :meth:`insert_roles` and :meth:`add_role_provenance` take four.

        :raises pymongo.errors.BulkWriteError: two roles with one id or one identifier.
        """
        if roles:
            self._db["practitioner_roles"].insert_many(
                [{**current_doc(r, key, held, search, rec), "identifiers": ids} for r, key, held, search, ids, rec in roles])
            self._db["practitioner_role_versions"].insert_many([version_doc(r, rec) for r, *_, rec in roles])

    @translate_write_errors
    def insert_new_reservations(self, reservations: list[tuple[str, dict[str, t.Any]]]) -> set[int]:
        """Give each ``(key, held)`` (:func:`.roles.held_period`) its business key's document, holding that
        one period, for keys that have none yet: what :meth:`.roles.RoleStore.reserve` writes for a new key, one
        unordered bulk write a batch. Returns the positions of those whose key was already stored (by
        anyone, or earlier in ``reservations``): nothing of them is written, and the caller reserves
        them one by one, which decides whether their periods clash."""
        if not reservations:
            return set()
        try:
            result = self._db["role_keys"].insert_many([{"_id": key, "periods": [held]} for key, held in reservations],
                                                       ordered=False)
        except BulkWriteError as e:
            errors = e.details["writeErrors"]
            if any(err["code"] != _DUPLICATE_KEY for err in errors):
                raise
            failed = {int(err["index"]) for err in errors}
            if e.details["nInserted"] != len(reservations) - len(failed):
                raise
            return failed
        if len(result.inserted_ids) != len(reservations):
            raise RuntimeError("the database did not store every reservation")  # cannot happen while acknowledged
        return set()

    @translate_write_errors
    def add_role_provenance(self, records: list[tuple[str, dict[str, t.Any]]]) -> int:
        """Give each ``(role id, record)`` to the version it names, and to the role's current document
        if that is the version. Returns how many named a version kept."""
        if not records:
            return 0
        versions = self._db["practitioner_role_versions"].bulk_write(
            [UpdateOne({"_id": f"{rid}/{rec['vid']}"}, {"$set": {"provenance": rec}}) for rid, rec in records], ordered=False)
        self._db["practitioner_roles"].bulk_write(
            [UpdateOne({"_id": rid, "vid": rec["vid"]}, {"$set": {"provenance": rec}}) for rid, rec in records], ordered=False)
        return int(versions.matched_count)

    @translate_write_errors
    @_unique
    def insert_references(self, records: list[tuple[dict[str, t.Any], dict[str, t.Any]]]) -> None:
        """Store each ``(resource, search)`` as a current record with no Provenance yet.

        :raises pymongo.errors.BulkWriteError: two records with one key or one HPI identifier.
        """
        if records:
            self._db["reference_resources"].bulk_write(
                [InsertOne({"_id": f"{r['resourceType']}/{r['id']}", **reference_doc(r, search), "provenance": []})
                 for r, search in records])

    @translate_write_errors
    def add_reference_provenance(self, records: list[tuple[str, dict[str, t.Any]]]) -> int:
        """Append each ``(Type/id, record)``, in order, to the records of who wrote that record's
        versions (oldest first); only versions up to the current one, each once. Returns how many found it."""
        if not records:
            return 0
        result = self._db["reference_resources"].bulk_write(
            [UpdateOne({"_id": key, "vid": {"$gte": rec["vid"]}, "provenance.vid": {"$ne": rec["vid"]}},
                       {"$push": {"provenance": rec}}) for key, rec in records])
        return int(result.matched_count)

    @translate_write_errors
    def clear(self) -> None:
        """Remove every record: undoes a restore that failed part way (the id counter is moved only
        once all is stored)."""
        for name in RECORDS:
            self._db[name].delete_many({})
