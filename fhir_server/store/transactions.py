"""Multi-document transactions for a FHIR transaction Bundle: the store methods run unchanged, and
their operations join the session of the transaction in progress in this thread (a context variable).

How a transaction is run (:func:`run_in_transaction`), as the driver documents for ``with_transaction``
(https://www.mongodb.com/docs/manual/core/transactions-in-applications/), within one time limit:

- Every statement and the commit run under ``pymongo.timeout`` of what is left of the limit, so each
  carries ``maxTimeMS`` and the database stops it too; nothing of a transaction outlives the request.
- An error labelled ``TransientTransactionError`` (a write conflict with a concurrent change, or the
  transaction aborted under it) runs the whole work again, after a short backoff, while time is left;
  past it the answer is :class:`TransactionConflict` (409). A commit labelled
  ``UnknownTransactionCommitResult`` is committed again (commits are idempotent); still unknown at
  the limit, the answer is :class:`TransactionOutcomeUnknown` (503: it may have been stored).
- A database that refuses transactions (a standalone mongod answers the first statement with code 20
  IllegalOperation, "Transaction numbers are only allowed on a replica set member or mongos"; pymongo
  raises ConfigurationError where the topology cannot have them) is :class:`TransactionsUnsupported`
  (501) at once: nothing was stored, and no retry can help. The topology alone does not decide:
  SecantusDB's ``--standalone`` mode, the embedded database, has transactions.
- MongoDB aborts a transaction on any write error, a duplicate key included, so a duplicate could only
  ever be answered "conflict". Inside a transaction an insert or a conditional upsert first asks
  whether it would collide, and raises the ``DuplicateKeyError`` the database would have raised,
  without the abort: the store then answers what a single create answers (422 duplicate, identifier
  in use). A collision that slips in between (a concurrent transaction) is a write conflict, retried.

A worker killed mid-transaction leaves it open on the database, its documents locked, until the
database reaps it: mongod after ``transactionLifetimeLimitSeconds`` (default 60 s from its start),
SecantusDB after 60 s idle and only when some transaction command comes. So each transaction takes a
lease first (:class:`Leases`: its session id and the time by which it has ended, its time limit plus
a second), and every worker ends the sessions of lapsed leases (``killSessions``, which aborts their
transactions) every :data:`SWEEP_SECONDS`: a dead worker's records are writable again at most the
time limit + 1 s + :data:`SWEEP_SECONDS` after its transaction began (26 s with the defaults). A
write outside a transaction that waits on such a document meanwhile is stopped by mongod at its own
``maxTimeMS``; SecantusDB keeps retrying it until the lock is gone, so there it may be applied after
it was answered 503 (which says it may have been).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import random
import threading
import time
import typing as t
from dataclasses import dataclass

import pymongo
from pymongo import MongoClient, WriteConcern
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
)

from ..outcome import FhirError, Msg, RequestRejected, StoreUnavailable, issue
from .client import deciding, on_primary

# Write concern of the last write before a create or update is answered. The default (w: 1) answers
# before the journal reaches the disk, and a database killed then (kill -9) lost creates answered
# 201 (`make reliability`). The journal is written in order, so this one flush also keeps the
# request's earlier writes (its reservation, its id block, the role); the others stay unjournaled,
# each flush costing a disk sync. Inside a transaction the commit's write concern applies instead.
DURABLE = WriteConcern("majority", j=True)
_OPERATIONS = {"find", "find_one", "insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one",
               "delete_many", "find_one_and_update", "bulk_write", "count_documents", "aggregate"}
_ILLEGAL_OPERATION = 20
_NOT_SUPPORTED = ("Transaction numbers are only allowed", "transactions are not supported", "Transactions are not supported")
_BACKOFF_MAX = 0.5  # seconds between attempts, at most
LEASES = "transaction_leases"
SWEEP_SECONDS = 5.0
_LEASE_GRACE = dt.timedelta(seconds=1)
_log = logging.getLogger(__name__)
T = t.TypeVar("T")


class TransactionConflict(RequestRejected):
    def __init__(self) -> None:
        super().__init__(issue(Msg.TRANSACTION_CONFLICT))


class TransactionsUnsupported(RequestRejected):
    """The database has no multi-document transactions (a standalone mongod)."""

    def __init__(self) -> None:
        super().__init__(issue(Msg.TRANSACTIONS_UNSUPPORTED))


class TransactionOutcomeUnknown(StoreUnavailable):
    """The commit was sent but its result never came back within the time limit."""

    def __init__(self) -> None:
        FhirError.__init__(self, issue(Msg.TRANSACTION_OUTCOME_UNKNOWN))  # a message of its own, still a 503


class TransactionTimedOut(StoreUnavailable):
    """The work did not finish within the time limit; the transaction was aborted."""

    def __init__(self, seconds: float) -> None:
        FhirError.__init__(self, issue(Msg.TRANSACTION_DEADLINE, seconds=round(seconds)))


@dataclass
class _Attempt:
    """One run of the work in one transaction, and what its statements met."""

    session: ClientSession
    transient: bool = False  # a statement failed in a way that a new attempt may not meet
    unsupported: bool = False


_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("transaction_attempt", default=None)
_unique_indexes: dict[str, list[list[str]]] = {}  # collection → the fields of each of its unique indexes
_one_command = True  # whether the server takes writes to several collections in one command (8.0+)


class _JoinedCollection:
    def __init__(self, collection: Collection[t.Any]) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> t.Any:
        attr = getattr(self._collection, name)
        if name not in _OPERATIONS:
            return attr

        def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
            attempt = _attempt.get()
            if attempt is None:
                return attr(*args, **kwargs)
            kwargs.setdefault("session", attempt.session)
            try:
                if name == "insert_one":
                    self._refuse_collision(args[0] if args else kwargs["document"], attempt.session)
                elif name == "update_one" and kwargs.get("upsert"):
                    return self._conditional_upsert(attr, *args, **kwargs)
                return attr(*args, **kwargs)
            except DuplicateKeyError:
                raise
            except PyMongoError as e:
                attempt.transient |= e.has_error_label("TransientTransactionError")
                attempt.unsupported |= _refuses_transactions(e)
                raise

        return call

    def _refuse_collision(self, doc: dict[str, t.Any], session: ClientSession) -> None:
        """Raise the DuplicateKeyError inserting ``doc`` would meet, before the write aborts the transaction."""
        clauses = []
        for fields in self._unique_fields():
            values = [doc.get(f) for f in fields]
            if any(v is None or v == [] for v in values):
                continue
            clauses.append({f: {"$in": v} if isinstance(v, list) else v for f, v in zip(fields, values, strict=True)})
        if clauses and self._collection.find_one({"$or": clauses}, {"_id": 1}, session=session) is not None:
            raise DuplicateKeyError("E11000 duplicate key error (found before the write, inside a transaction)", 11000)

    def _unique_fields(self) -> list[list[str]]:
        name = self._collection.full_name
        if name not in _unique_indexes:  # asked outside the transaction, which may not list indexes
            info = self._collection.index_information()
            _unique_indexes[name] = [["_id"]] + [[f for f, _ in spec["key"]] for spec in info.values() if spec.get("unique")]
        return _unique_indexes[name]

    def _conditional_upsert(self, update_one: t.Any, query: dict[str, t.Any], update: t.Any, **kwargs: t.Any) -> t.Any:
        """An upsert whose filter holds more than ``_id``: if the document exists but does not match, the
        database would raise DuplicateKeyError (and abort); raise it here instead."""
        if "_id" not in query or len(query) == 1:
            return update_one(query, update, **kwargs)
        if self._collection.find_one({"_id": query["_id"]}, {"_id": 1}, session=kwargs["session"]) is None:
            return update_one(query, update, **kwargs)
        result = update_one(query, update, **{**kwargs, "upsert": False})
        if result.matched_count == 0:
            raise DuplicateKeyError("E11000 duplicate key error (found before the write, inside a transaction)", 11000)
        return result


class Joined:
    """A database whose collections' operations join the transaction in progress, if any."""

    def __init__(self, db: Database[t.Any]) -> None:
        self._db = db

    def __getitem__(self, name: str) -> t.Any:
        return _JoinedCollection(self._db[name])

    def deciding(self, name: str) -> t.Any:
        """The collection for reads that decide a write: see :func:`.client.deciding`."""
        return _JoinedCollection(deciding(self._db[name]))

    def on_primary(self, name: str) -> t.Any:
        """The collection for reads of what the primary has applied: see :func:`.client.on_primary`."""
        return _JoinedCollection(on_primary(self._db[name]))

    def durable(self, name: str) -> t.Any:
        """The collection, its writes acknowledged only once in the journal: see :data:`DURABLE`."""
        return _JoinedCollection(self._db[name].with_options(write_concern=DURABLE))

    def namespace(self, name: str) -> str:
        return f"{self._db.name}.{name}"

    def write_in_order(self, writes: list[t.Any]) -> bool:
        """Send ``writes`` (pymongo write models, each naming its ``namespace``) as one ordered
        ``bulkWrite`` command (MongoDB 8.0's, across collections), with the database's write concern
        (majority and journaled, see .client.durable_write_concern): the first write that fails stops
        the rest. False, with nothing sent, where they cannot go as one: inside a transaction (a write
        error there would abort it) or on a server before 8.0.

        :raises ClientBulkWriteException: naming the write that failed, or the command's own error.
        """
        global _one_command
        if not _one_command or _attempt.get() is not None:
            return False
        try:
            self._db.client.bulk_write(writes, ordered=True, write_concern=self._db.write_concern)
        except InvalidOperation:  # the server is older than 8.0: nothing was sent
            _one_command = False
            return False
        return True


def _refuses_transactions(e: PyMongoError) -> bool:
    if isinstance(e, ConfigurationError):
        return any(text.lower() in str(e).lower() for text in _NOT_SUPPORTED)
    return isinstance(e, OperationFailure) and (e.code == _ILLEGAL_OPERATION or any(text in str(e) for text in _NOT_SUPPORTED))


class Leases:
    """The transactions running, each until when: what a worker that died in one leaves behind is ended
    by the others once that time has passed, long before the database would reap it."""

    def __init__(self, db: Database[t.Any]) -> None:
        self._leases = db[LEASES]
        self._admin = db.client.admin

    def ensure_indexes(self) -> None:
        self._leases.create_index("until")

    def take(self, session: ClientSession, seconds: float) -> t.Any:
        lease = session.session_id["id"]
        until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds) + _LEASE_GRACE
        self._leases.update_one({"_id": lease}, {"$set": {"until": until}}, upsert=True)  # a pooled session is used again
        return lease

    def give_back(self, lease: t.Any) -> None:
        try:
            self._leases.delete_one({"_id": lease})
        except PyMongoError:  # the sweep ends a session that has already ended: harmless
            pass

    def end_lapsed(self) -> int:
        """End the sessions whose leases have passed (their transactions are aborted); how many."""
        ended = 0
        for lease in self._leases.find({"until": {"$lt": dt.datetime.now(dt.timezone.utc)}}, {"_id": 1}).limit(100):
            self._admin.command("killSessions", [{"id": lease["_id"]}])
            self._leases.delete_one({"_id": lease["_id"]})
            ended += 1
        return ended

    def sweep(self, every: float = SWEEP_SECONDS) -> threading.Thread:
        """End lapsed sessions every ``every`` seconds, in a daemon thread of this process."""
        def loop() -> None:
            while True:
                time.sleep(every)
                try:
                    if ended := self.end_lapsed():
                        _log.warning("ended %d transaction(s) left open past their time limit (a worker died?)", ended)
                except PyMongoError:  # the database is away: try again next time
                    pass

        thread = threading.Thread(target=loop, name="transaction-leases", daemon=True)
        thread.start()
        return thread


def run_in_transaction(client: MongoClient[t.Any], work: t.Callable[[], T], seconds: float, leases: Leases | None = None) -> T:
    """Run ``work`` in one transaction, again while a new attempt may succeed, all within ``seconds``.

    :raises TransactionsUnsupported: the database refuses transactions (501), nothing stored.
    :raises TransactionConflict: concurrent changes kept aborting it until the time limit (409).
    :raises TransactionTimedOut: the time limit passed before the work was done, or the work raised
        TimeoutError (503), nothing stored.
    :raises TransactionOutcomeUnknown: the commit's result is unknown at the time limit (503).
    :raises StoreUnavailable: the database cannot be reached (503), nothing stored.
    Any exception of ``work`` itself aborts the transaction and is raised as it is.
    """
    if _attempt.get() is not None:
        raise RuntimeError("transactions do not nest")
    started = time.monotonic()
    try:
        with pymongo.timeout(seconds), client.start_session() as session:
            lease = leases.take(session, seconds) if leases is not None else None
            try:
                tries = 0
                while True:
                    tries += 1
                    done = _attempt_once(session, work, started, seconds)
                    if done is not None:
                        return done[0]
                    backoff = random.random() * min(0.005 * 1.5 ** tries, _BACKOFF_MAX)
                    if time.monotonic() + backoff - started >= seconds:
                        raise TransactionConflict()
                    time.sleep(backoff)
            finally:
                if leases is not None:
                    leases.give_back(lease)
    except ConfigurationError as e:
        if _refuses_transactions(e):
            raise TransactionsUnsupported() from e
        raise
    except PyMongoError as e:  # outside the work's statements: the session, the lease (a spent deadline), the abort
        if e.timeout:
            raise TransactionTimedOut(seconds) from e
        if isinstance(e, ConnectionFailure):
            raise StoreUnavailable() from e
        raise


def _attempt_once(session: ClientSession, work: t.Callable[[], T], started: float, seconds: float) -> tuple[T] | None:
    """(result,) once committed; None when a new attempt may succeed."""
    attempt = _Attempt(session)
    token = _attempt.set(attempt)
    try:
        session.start_transaction(write_concern=DURABLE)
        try:
            result = work()
        except BaseException as e:
            _abort(session)
            if attempt.unsupported or (isinstance(e, PyMongoError) and _refuses_transactions(e)):
                raise TransactionsUnsupported() from e
            if attempt.transient or (isinstance(e, PyMongoError) and e.has_error_label("TransientTransactionError")):
                return None
            if isinstance(e, TimeoutError) or isinstance(e, PyMongoError) and e.timeout or time.monotonic() - started >= seconds:
                raise TransactionTimedOut(seconds) from e
            if isinstance(e, OperationFailure) and e.code in (112, 251):  # WriteConflict, NoSuchTransaction
                return None
            raise
    finally:
        _attempt.reset(token)
    return (result,) if _commit(session) else None


def _commit(session: ClientSession) -> bool:
    """Commit, again while the result is unknown (the driver's documented retry); False if the whole
    transaction should be run again."""
    while True:
        try:
            session.commit_transaction()
            return True
        except PyMongoError as e:
            if e.has_error_label("UnknownTransactionCommitResult"):
                if e.timeout:
                    raise TransactionOutcomeUnknown() from e
                continue
            if e.has_error_label("TransientTransactionError"):
                return False
            if isinstance(e, ConnectionFailure):
                raise TransactionOutcomeUnknown() from e
            raise


def _abort(session: ClientSession) -> None:
    if session.in_transaction:
        try:
            session.abort_transaction()  # the database rolls back on its own if this is lost too
        except PyMongoError:
            pass
