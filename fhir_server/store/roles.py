"""PractitionerRole records, their versions, and the business-key reservations that keep them free of
duplicates.

A role's current version is one document in ``practitioner_roles``: ``{_id: role id, vid, key, held,
search, identifiers, resource, provenance}``. ``search`` holds the values the search parameters match (see
:mod:`..service.search`); ``held`` is the reservation of ``role_keys`` this role owns, or None.
Every version, the current one included, is also kept in ``practitioner_role_versions``
(``_id: "{id}/{vid}"``) for vread and history. The record of who wrote each version
(``provenance``, :func:`..audit.record`, served as a Provenance) is stored with it, in the current
document and in the version document alike, so a version re-written after a crash keeps it.

Updates are compare-and-set: the replace matches only the version the client read (``vid``), so of two
updates from the same version one wins and the other matches nothing (409). Versions are written
after the current document changes; a version lost to a crash in between is still served from the
current document, and the next update writes it (:meth:`RoleStore.replace`).

Duplicates and overlaps (SPEC.md §3.5) are prevented without transactions: each business key
(live CPN, organisation, facility, role code) has one document in ``role_keys`` holding the periods of
the roles that use it, each tagged with the role and a token naming the reservation; a role stores
the token of the one it owns (``held``). Reserving a period
is one conditional upsert on that document, atomic in any MongoDB: it matches only if no other role's
held period overlaps, so of N racing creates exactly one wins, and the others' upsert collides on
``_id`` (DuplicateKeyError), which means "duplicate".

Each reservation names its role and carries a lease (``until``): the deadline of the request that
made it, after which that request can no longer store its role (every operation of a request ends by
its deadline, server side included: see :mod:`.deadline`). A create that finds a period held tells at
once, with :meth:`RoleStore.blockers`, a stored role (a real duplicate) from debris (the lease is
over and no role owns it: a request that failed or died; it is cleared) and from a request still in
flight (its lease is live). A request whose insert failed definitely releases its reservation; one
whose insert may have been applied leaves it to its lease. So nothing a failed request leaves blocks
the next one beyond the failed request's own deadline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import typing as t
import uuid
from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.errors import ClientBulkWriteException, DuplicateKeyError, OperationFailure
from pymongo.results import UpdateResult

from ..instants import last_updated
from ..validation.dates import OPEN_END, OPEN_START
from .errors import IdentifierTaken, translate_errors, translate_write_errors
from .queries import Criterion, Page, find_page, to_filter
from .transactions import Joined

_PRACTITIONER_INDEX = [("search.practitioner", ASCENDING), ("_id", ASCENDING)]
# History's order, newest first, exactly: pages are read by key along it.
_HISTORY_ORDER = [("updated", DESCENDING), ("_id", ASCENDING)]
_ROLE_HISTORY_ORDER = [("role", ASCENDING), ("vid", DESCENDING)]
_OLD_UPDATED_INDEX = "updated_-1"  # served history before it paged by key
# Type-level history reads time windows back from where a page starts, each _GROWTH times wider than
# the last, until it has a page: a query reads (on SecantusDB, decodes) every version in its range, so
# one open range would cost the rest of the collection on every page. Reaching back from today to
# year 1 takes 18 empty windows. After a quiet spell, the window that reaches the versions before it
# may hold many more than a page (those of up to _GROWTH - 1 such spells); it stops at the newest
# version the process has served before, where one is known to be.
_FIRST_WINDOW = dt.timedelta(seconds=1)
_GROWTH = 4
_FLOOR = dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc)  # the windows stop here; the last reads all that is older
# Reservations made before leases were (no ``until``) are debris this long after they were made.
LEGACY_LEASE = dt.timedelta(seconds=60)
_DUPLICATE_KEY = 11000
Replaced = t.Literal["replaced", "lost", "held"]


class RoleIdTaken(Exception):
    """The issued id is already a stored role's: the id counter is behind the records (a restore)."""


@dataclass(frozen=True)
class Blocker:
    """A held period that stands in a reservation's way, and what it is."""

    token: str
    role: str
    state: str  # "stored": its role holds it (a duplicate); "debris": nobody will; "live": a request in flight
    until: dt.datetime


@dataclass(frozen=True)
class StoredRole:
    resource: dict[str, t.Any]
    key: str
    held: str | None  # the token of the reservation this role owns, if it holds a period
    provenance: dict[str, t.Any] | None = None  # who wrote this version; None for roles stored before audit

    @classmethod
    def of(cls, doc: dict[str, t.Any]) -> StoredRole:
        return cls(doc["resource"], doc["key"], doc.get("held"), doc.get("provenance"))

    @property
    def vid(self) -> int:
        return int(self.resource["meta"]["versionId"])


_FIELDS = {"resource": 1, "key": 1, "held": 1, "provenance": 1}


def version_doc(resource: dict[str, t.Any], provenance: dict[str, t.Any] | None) -> dict[str, t.Any]:
    vid = int(resource["meta"]["versionId"])
    doc = {"_id": f"{resource['id']}/{vid}", "role": resource["id"], "vid": vid, "updated": last_updated(resource), "resource": resource}
    return {**doc, "provenance": provenance} if provenance else doc


def current_doc(resource: dict[str, t.Any], key: str, held: str | None, search: dict[str, t.Any],
                provenance: dict[str, t.Any] | None, with_id: bool = True) -> dict[str, t.Any]:
    """A role's current document (without its identifier keys)."""
    # A version that has no Provenance (an older role's) has none to set: $set of None would
    # store a null that reads back as "nobody".
    doc = {"vid": int(resource["meta"]["versionId"]), "key": key, "held": held, "search": search, "resource": resource,
           **({"provenance": provenance} if provenance else {})}
    return {"_id": resource["id"], **doc} if with_id else doc


class RoleStore:
    def __init__(self, db: Joined) -> None:
        self._roles = db["practitioner_roles"]
        self._versions = db.durable("practitioner_role_versions")  # written last: its flush keeps the rest
        self._keys = db["role_keys"]
        # The newest version this process has served at the top of a history: a version is known to be
        # there, so a window may stop at it rather than read on into what lies beyond (a quiet night).
        self._newest_seen: dt.datetime | None = None
        # Reads that decide a write go to the primary (see .client.deciding).
        self._deciding_roles = db.deciding("practitioner_roles")
        self._deciding_keys = db.deciding("role_keys")
        self._primary_roles = db.on_primary("practitioner_roles")
        self._db = db
        self._names = {name: db.namespace(name) for name in ("role_keys", "practitioner_roles", "practitioner_role_versions")}

    def ensure_indexes(self) -> None:
        # Every search must name a practitioner (SPEC.md §3.4), so one index on it, ordered as results
        # are, serves them all; the others serve conditional creates and history.
        self._roles.create_index(_PRACTITIONER_INDEX)
        self._roles.create_index([("search.identifier", ASCENDING)])
        # _revinclude of organisations and facilities finds the roles that point at them.
        self._roles.create_index([("search.organization", ASCENDING), ("_id", ASCENDING)])
        self._roles.create_index([("search.location", ASCENDING), ("_id", ASCENDING)])
        self._roles.create_index([("identifiers", ASCENDING)], unique=True)
        # A create sent with an Idempotency-Key is tagged with it, to be found when the key is replayed.
        self._roles.create_index([("request", ASCENDING)], sparse=True)
        self._versions.create_index(_ROLE_HISTORY_ORDER)
        self._versions.create_index(_HISTORY_ORDER)
        if _OLD_UPDATED_INDEX in self._versions.index_information():
            with contextlib.suppress(OperationFailure):  # another process dropped it first
                self._versions.drop_index(_OLD_UPDATED_INDEX)

    # --- current versions -------------------------------------------------------------------------

    @translate_errors
    def get(self, role_id: str, deciding: bool = False) -> StoredRole | None:
        """The current version; ``deciding``: for a write (an update's If-Match check), from the primary."""
        roles = self._deciding_roles if deciding else self._roles
        doc = roles.find_one({"_id": role_id}, _FIELDS)
        return StoredRole.of(doc) if doc else None

    @translate_errors
    def read_back(self, role_id: str) -> tuple[StoredRole | None, StoredRole | None]:
        """The role's current version as a majority has it, and as the primary has it: the primary
        may hold a write whose answer was lost that is not yet majority-committed (and that a
        failover could still roll back). For learning what became of such a write."""
        docs = [c.find_one({"_id": role_id}, _FIELDS) for c in (self._deciding_roles, self._primary_roles)]
        return t.cast(tuple[StoredRole | None, StoredRole | None], tuple(StoredRole.of(d) if d else None for d in docs))

    @translate_errors
    def get_by_request(self, request: str) -> StoredRole | None:
        """The role a create tagged with ``request`` (an Idempotency-Key's scope) stored, if any."""
        doc = self._deciding_roles.find_one({"request": request}, _FIELDS)
        return StoredRole.of(doc) if doc else None

    @translate_write_errors
    def insert(self, resource: dict[str, t.Any], key: str, held: str | None, search: dict[str, t.Any],
               identifiers: list[str], request: str | None = None, provenance: dict[str, t.Any] | None = None,
               reserving: tuple[dt.datetime, dt.datetime | None] | None = None) -> bool:
        """Store a new role as its current version with its ``provenance``, and keep the version.

        With ``reserving`` (made at, lease until), first hold the role's period under ``held`` as
        :meth:`reserve` does; False, with nothing written, if another role holds an overlapping
        period. The reservation, the role and its version go in one ordered command where the
        server takes it (:meth:`.Joined.write_in_order`), else one after the other.

        :raises IdentifierTaken: another role has one of ``identifiers`` (``system|value``); a unique
            index decides, so of two racing creates with one identifier only one is stored. A period
            reserved meanwhile stays held (the caller releases it).
        :raises RoleIdTaken: a stored role has the id already (ditto).
        """
        doc = {**current_doc(resource, key, held, search, provenance), "identifiers": identifiers}
        doc = {**doc, "request": request} if request else doc
        writes = [InsertOne(doc, namespace=self._names["practitioner_roles"]),
                  *self._version_writes(StoredRole(resource, key, held, provenance))]
        if reserving is not None:
            writes.insert(0, self._reservation_write(key, resource, t.cast(str, held), reserving))
        try:
            if self._db.write_in_order(writes):
                return True
        except ClientBulkWriteException as e:
            if _stopped_at(e) == 0 and reserving is not None:
                return False  # a clash, or racing first reservations of the key: see reserve
            raise self._taken(identifiers, resource["id"]) from None
        if reserving is not None and not self.reserve(key, resource.get("period"), resource["id"], t.cast(str, held), *reserving):
            return False
        try:
            self._roles.insert_one(doc)
        except DuplicateKeyError:
            raise self._taken(identifiers, resource["id"]) from None
        self._keep_versions(StoredRole(resource, key, held, provenance))
        return True

    def _taken(self, identifiers: list[str], role_id: str) -> IdentifierTaken | RoleIdTaken:
        """Why a role's insert met a duplicate key: an identifier another role has, else its id."""
        return self.identifier_holder(identifiers, role_id) or RoleIdTaken(role_id)

    @translate_write_errors
    def keep_version(self, stored: StoredRole) -> None:
        """Keep ``stored`` among the versions if a failed write left it out (none if it is there)."""
        self._keep_versions(stored)

    @translate_errors
    def highest_id(self) -> str | None:
        """The greatest role id stored: ids are ``R`` and 8 digits, so their order is their numbers'."""
        doc = self._deciding_roles.find_one({"_id": {"$regex": "^R[0-9]{8}-"}}, {"_id": 1}, sort=[("_id", DESCENDING)])
        return doc["_id"] if doc else None

    @translate_errors
    def identifier_holder(self, identifiers: list[str], role_id: str | None) -> IdentifierTaken | None:
        """Which other role has one of ``identifiers`` (``system|value``), if any."""
        other = self._deciding_roles.find_one({"identifiers": {"$in": identifiers}, "_id": {"$ne": role_id}}, {"identifiers": 1})
        if other is None:
            return None
        return IdentifierTaken(next(i for i in identifiers if i in other["identifiers"]), f"PractitionerRole/{other['_id']}")

    @translate_write_errors
    def replace(self, previous: StoredRole, resource: dict[str, t.Any], held: str | None, search: dict[str, t.Any],
                provenance: dict[str, t.Any], reserving: tuple[dt.datetime, dt.datetime] | None = None) -> Replaced:
        """Make ``resource`` the current version, with its ``provenance``, if ``previous`` still is
        ("replaced"); "lost" if another update won. With ``reserving`` (made at, lease until), first
        hold the new version's period under ``held``: "held", with nothing written, if another role
        holds an overlapping period.

        In one ordered command where the server takes it, the compare-and-set is an upsert: when the
        version has moved on it collides with the role's own ``_id``, which stops the writes after it.
        """
        new = StoredRole(resource, previous.key, held, provenance)
        current = current_doc(resource, previous.key, held, search, provenance, with_id=False)
        writes = [UpdateOne({"_id": resource["id"], "vid": previous.vid}, {"$set": current}, upsert=True,
                            namespace=self._names["practitioner_roles"]), *self._version_writes(previous, new)]
        if reserving is not None:
            writes.insert(0, self._reservation_write(previous.key, resource, t.cast(str, held), reserving))
        try:
            if self._db.write_in_order(writes):
                return "replaced"
        except ClientBulkWriteException as e:
            return "held" if _stopped_at(e) == 0 and reserving is not None else "lost"
        if reserving is not None and not self.reserve(previous.key, resource.get("period"), resource["id"], t.cast(str, held), *reserving):
            return "held"
        result = self._roles.update_one({"_id": resource["id"], "vid": previous.vid}, {"$set": current})
        if result.matched_count == 0:
            return "lost"
        # The previous version too, in case a crash kept it from being written when it was made.
        self._keep_versions(previous, new)
        return "replaced"

    def _reservation_write(self, key: str, resource: dict[str, t.Any], token: str,
                           reserving: tuple[dt.datetime, dt.datetime | None]) -> UpdateOne:
        return UpdateOne(*_reservation(key, resource.get("period"), resource["id"], token, *reserving), upsert=True,
                         namespace=self._names["role_keys"])

    def _version_writes(self, *versions: StoredRole) -> list[UpdateOne]:
        """Each version written unless already kept (a version never changes)."""
        docs = [version_doc(v.resource, v.provenance) for v in versions]
        return [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True, namespace=self._names["practitioner_role_versions"])
                for d in docs]

    def _keep_versions(self, *versions: StoredRole) -> None:
        """Write these versions unless already kept: one round trip (a collection's bulk write takes
        the same writes, their namespace aside)."""
        self._versions.bulk_write(self._version_writes(*versions), ordered=False)

    @translate_errors
    def find_by_identifier(self, token: str) -> list[StoredRole]:
        """The roles with an identifier matching ``token`` (``[system|]value``); at most two, enough to
        tell one from several."""
        return [StoredRole.of(d) for d in self._deciding_roles.find({"search.identifier": token}, _FIELDS).limit(2)]

    @translate_errors
    def search(self, criteria: list[Criterion], offset: int, count: int, sort: t.Sequence[tuple[str, bool]] = (),
               counted: bool = True) -> Page:
        """A page of the roles matching all ``criteria``, in id order, and how many match.

        The database applies what it can through an index (every role search names a practitioner,
        and the practitioner index narrows to that practitioner's roles); what it could only apply by
        scanning is applied here, to at most :data:`.queries.MAX_CANDIDATES` roles.

        :raises TooManyCandidates: more roles than that before the conditions applied here.
        """
        query, rest = to_filter(criteria, "search.")
        return find_page(self._roles, query, rest, offset, count, sort, counted)

    @translate_errors
    def flagged(self, role_ids: list[str], field: str) -> set[str]:
        """Those of ``role_ids`` whose current version has the search field ``field`` true: one round trip."""
        return {d["_id"] for d in self._roles.find({"_id": {"$in": role_ids}, f"search.{field}": True}, {"_id": 1})}

    # --- versions ----------------------------------------------------------------------------------

    @translate_errors
    def version(self, role_id: str, vid: int) -> dict[str, t.Any] | None:
        # Every version is kept with the write that makes it current; the current document serves
        # one a crash kept from being written (an older release wrote them one after the other).
        kept = self._versions.find_one({"_id": f"{role_id}/{vid}"}, {"resource": 1})
        doc = kept or self._roles.find_one({"_id": role_id, "vid": vid}, {"resource": 1})
        return doc["resource"] if doc else None

    @translate_errors
    def history(self, role_id: str | None, after: tuple[t.Any, ...] | None, count: int, counted: bool,
                now: dt.datetime, since: dt.datetime | None = None,
                at: tuple[dt.datetime, dt.datetime] | None = None) -> Page:
        """Versions newest first, of one role or of all roles (``role_id`` None), from just after
        ``after`` (the key :attr:`Page.after` gave: ``(vid,)`` of one role, ``(updated, _id)`` of all).

        Read by key along an index in history's order, never skipped to; versions written meanwhile
        are newer than any page already served, so a walk sees each version once. ``counted`` asks for
        the total: for all roles it is a count of the collection.

        ``since``: only versions written at or after it (``_since``). ``at``, of one role only: the
        versions that were current at some moment of ``[low, high)`` (``_at``), that is those written
        before ``high`` from the one current at ``low`` on.
        """
        if role_id is not None:
            window: dict[str, t.Any] = {"role": role_id}
            if since is not None:
                window["updated"] = {"$gte": since}
            if at is not None:
                low, high = at
                window.setdefault("updated", {})["$lt"] = high
                current_at_low = self._versions.find_one({"role": role_id, "updated": {"$lte": low}}, {"vid": 1},
                                                         sort=_ROLE_HISTORY_ORDER[1:])
                if current_at_low is not None:
                    window["vid"] = {"$gte": current_at_low["vid"]}
            query: dict[str, t.Any] = {**window, **({"vid": {**window.get("vid", {}), "$lt": after[0]}} if after else {})}
            found = (list(self._versions.find(query, {"resource": 1, "vid": 1}).sort(_ROLE_HISTORY_ORDER[1:]).limit(count + 1))
                     if count else [])
            total = self._versions.count_documents(window) if counted else None
            key: tuple[t.Any, ...] | None = (found[count - 1]["vid"],) if len(found) > count else None
        else:
            found = self._all_history(after, count + 1, now, since) if count else []
            total = self._versions.count_documents({"updated": {"$gte": since}} if since else {}) if counted else None
            key = (found[count - 1]["updated"], found[count - 1]["_id"]) if len(found) > count else None
        return Page(total, [d["resource"] for d in found[:count]], key)

    def _all_history(self, after: tuple[t.Any, ...] | None, wanted: int, now: dt.datetime,
                     since: dt.datetime | None = None) -> list[dict[str, t.Any]]:
        """Up to ``wanted`` versions of all roles in history's order after ``after``, read window by
        window back in time: each query a flat range on the history index, never an ``$or``; none
        older than ``since``."""
        projection = {"resource": 1, "updated": 1}
        found: list[dict[str, t.Any]] = []
        newer_than: dt.datetime | None = None  # the windows read so far hold every version from here on
        if after is not None:
            updated, version_id = after  # the versions of the same instant, after the last one served
            found += self._versions.find({"updated": updated, "_id": {"$gt": version_id}}, projection).sort(_HISTORY_ORDER).limit(wanted)
            newer_than = updated
        width = _FIRST_WINDOW
        while len(found) < wanted:
            top = newer_than or now
            start = top - width if top - _FLOOR > width else None  # None: the rest of history, whatever its age
            seen = self._newest_seen
            if seen is not None and seen < top and (start is None or seen > start):
                start, width = seen, _FIRST_WINDOW / _GROWTH  # and below it, small windows again
            last = since is not None and (start is None or start <= since)
            if last:
                start = since  # the oldest window: nothing below it is asked for
            window = {**({"$gte": start} if start else {}), **({"$lt": newer_than} if newer_than else {})}
            query = {"updated": window} if window else {}
            found += self._versions.find(query, projection).sort(_HISTORY_ORDER).limit(wanted - len(found))
            if start is None or last:
                break
            newer_than, width = start, width * _GROWTH
        if after is None and found:
            self._newest_seen = max(found[0]["updated"], self._newest_seen or found[0]["updated"])
        return found

    # --- who wrote them ------------------------------------------------------------------------------

    @translate_errors
    def provenance(self, role_id: str, vid: int) -> dict[str, t.Any] | None:
        """The record of who wrote version ``vid``: from its version document, or from the current
        document if a crash kept the version from being written yet."""
        doc = self._versions.find_one({"_id": f"{role_id}/{vid}"}, {"provenance": 1})
        if doc is None:
            doc = self._roles.find_one({"_id": role_id, "vid": vid}, {"provenance": 1})
        return doc.get("provenance") if doc else None

    @translate_errors
    def provenances(self, role_id: str, offset: int, count: int) -> Page:
        """A page of the records of who wrote a role's versions, newest first, and how many there are.
        The current version's is read from the current document, where it is surely kept."""
        current = self._roles.find_one({"_id": role_id}, {"vid": 1, "provenance": 1})
        if current is None:
            return Page(0, [])
        older = {"role": role_id, "vid": {"$lt": current["vid"]}, "provenance": {"$exists": True}}
        first = [current["provenance"]] if current.get("provenance") else []
        skip, wanted = max(0, offset - len(first)), count - len(first[offset:offset + count])
        found = [d["provenance"] for d in self._versions.find(older, {"provenance": 1}).sort(_ROLE_HISTORY_ORDER[1:])
                 .skip(skip).limit(wanted)] if wanted > 0 else []
        total = len(first) + self._versions.count_documents(older)
        return Page(total, first[offset:offset + count] + found)

    # --- seeding -----------------------------------------------------------------------------------

    @translate_errors
    def insert_existing(self, resource: dict[str, t.Any], key: str, held: str | None, search: dict[str, t.Any],
                        identifiers: list[str], provenance: dict[str, t.Any]) -> bool:
        """Load a record that already has its id and version (reference data); False if present."""
        try:
            self.insert(resource, key, held, search, identifiers, provenance=provenance)
        except RoleIdTaken:
            return False
        return True

    @translate_errors
    def unupgraded(self) -> list[dict[str, t.Any]]:
        """Roles stored before versions, search fields and identifier keys were (an older database)."""
        return [d["resource"] for d in self._roles.find({"identifiers": {"$exists": False}}, {"resource": 1})]

    @translate_errors
    def upgrade(self, resource: dict[str, t.Any], key: str, held: str | None, search: dict[str, t.Any],
                identifiers: list[str], at: dt.datetime) -> None:
        """Give an older role what this version stores beside it, keep its version, and re-tag the
        period it holds with the token it now owns."""
        rid = resource["id"]
        self._roles.update_one({"_id": rid, "identifiers": {"$exists": False}},
                               {"$set": {**current_doc(resource, key, held, search, None, with_id=False),
                                         "identifiers": identifiers}})
        self._keep_versions(StoredRole(resource, key, held))
        if held is not None:
            self.reserve(key, resource.get("period"), rid, held, at)
        self._keys.update_one({"_id": key}, {"$pull": {"periods": {"role": rid, "by": {"$exists": False}}}})

    # --- business-key reservations -------------------------------------------------------------------

    @staticmethod
    def new_token(role_id: str) -> str:
        """A reservation's own name: unique per attempt, so that releasing one never frees another's
        (two updates racing from one version would otherwise share a name)."""
        return f"{role_id}/{uuid.uuid4().hex}"

    @translate_write_errors
    def reserve(self, key: str, period: dict[str, t.Any] | None, role_id: str, token: str, at: dt.datetime,
                until: dt.datetime | None = None) -> bool:
        """Hold ``period`` of business key ``key`` for ``role_id`` under ``token``, with a lease ending
        ``until`` (the request's deadline; None: never, for a role already stored); False if a period
        another role holds overlaps."""
        query, update = _reservation(key, period, role_id, token, at, until)
        try:
            self._keys.update_one(query, update, upsert=True)
        except DuplicateKeyError:
            # A clash, or two first reservations of a new key racing to insert it: MongoDB retries
            # such an upsert only when its filter is all equalities, so try once more as an update.
            second: UpdateResult = self._keys.update_one(query, update)
            return second.matched_count == 1
        return True

    @translate_errors
    def would_clash(self, key: str, period: dict[str, t.Any] | None, role_id: str | None) -> bool:
        """Whether :meth:`reserve` would fail now; reserves nothing (for $validate)."""
        start, end = _bounds(period)
        return self._keys.find_one({"_id": key, "$or": _clashes(start, end, role_id)}, {"_id": 1}) is not None

    @translate_write_errors
    def release(self, key: str, token: str) -> None:
        self._keys.update_one({"_id": key}, {"$pull": {"periods": {"by": token}}})

    @translate_errors
    def blockers(self, key: str, period: dict[str, t.Any] | None, role_id: str, now: dt.datetime) -> list[Blocker]:
        """The held periods of ``key`` that clash with ``period`` for ``role_id``, each with what it is:
        two reads from the primary, made only when a reservation failed."""
        start, end = _bounds(period)
        doc = self._deciding_keys.find_one({"_id": key}) or {"periods": []}
        clashing = [p for p in doc["periods"] if p.get("role") != role_id
                    and ((p["s"] < end and p["e"] > start) or (start == end and p.get("day") == start))]
        roles = list({p["role"] for p in clashing})
        # A role the primary holds owns its period even before a majority has it (its write's answer
        # may have been lost): never take its period for debris.
        owned = {d.get("held") for d in self._primary_roles.find({"_id": {"$in": roles}}, {"held": 1})} if roles else set()
        found = []
        for p in clashing:
            until = p.get("until") or (p["at"] + LEGACY_LEASE if "at" in p else None)
            if p.get("by") in owned or until is None:
                state, until = "stored", until or now
            else:
                state = "debris" if until < now else "live"
            found.append(Blocker(p.get("by", ""), p["role"], state, until))
        return found

    @translate_write_errors
    def clear(self, key: str, blockers: list[Blocker]) -> None:
        """Free periods found to be debris. A token names one attempt and is never reused, and the
        attempt's lease is over, so nothing can come to own these periods any more."""
        self._keys.update_one({"_id": key}, {"$pull": {"periods": {"by": {"$in": [b.token for b in blockers]}}}})


def _stopped_at(e: ClientBulkWriteException) -> int:
    """Which write of an ordered command a duplicate key stopped; any other failure is raised."""
    errors: list[dict[str, t.Any]] = e.details.get("writeErrors") or [{}]  # ordered: only the one that stopped it
    if e.error is not None or e.write_concern_errors or errors[0].get("code") != _DUPLICATE_KEY:
        raise e
    return int(errors[0]["idx"])


def _reservation(key: str, period: dict[str, t.Any] | None, role_id: str, token: str, at: dt.datetime,
                 until: dt.datetime | None) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """The filter and update of an upsert that holds ``period`` of ``key`` for ``role_id``, matching
    only if no other role holds an overlapping period (see :meth:`RoleStore.reserve`)."""
    start, end = _bounds(period)
    clashes = _clashes(start, end, role_id)
    # One clause is written as a condition on the field, not under $nor: SecantusDB finds a
    # document by _id through its index only when the filter has no top-level operator (else it
    # scans every key, a cost that grows with each role stored). The single-day case needs two.
    query = {"_id": key, "periods": {"$not": clashes[0]["periods"]}} if len(clashes) == 1 else {"_id": key, "$nor": clashes}
    return query, {"$push": {"periods": held_period(period, role_id, token, at, until)}}


def held_period(period: dict[str, t.Any] | None, role_id: str, token: str, at: dt.datetime,
                until: dt.datetime | None = None) -> dict[str, t.Any]:
    """``period`` as a business key's document holds it for ``role_id`` under ``token``, with its lease."""
    start, end = _bounds(period)
    return {"s": start, "e": end, "role": role_id, "by": token, "day": start if start == end else None, "at": at, "until": until}


def _bounds(period: dict[str, t.Any] | None) -> tuple[str, str]:
    return (period or {}).get("start", OPEN_START), (period or {}).get("end", OPEN_END)


def _clashes(start: str, end: str, role_id: str | None) -> list[dict[str, t.Any]]:
    """The held periods of other roles that a period clashes with (SPEC.md §3.5): overlap is
    ``s1 < e2 and s2 < e1`` ("two periods are not overlapping if one starts on the same day the
    other ends"), plus an identical single-day period, tracked by ``day``."""
    others = {"role": {"$ne": role_id}}
    overlapping = {"periods": {"$elemMatch": {"s": {"$lt": end}, "e": {"$gt": start}, **others}}}
    return [overlapping, {"periods": {"$elemMatch": {"day": start, **others}}}] if start == end else [overlapping]
