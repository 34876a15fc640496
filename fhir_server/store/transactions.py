"""Multi-document transactions for a FHIR transaction Bundle: the store methods run unchanged, and
their operations join the session of the transaction in progress in this thread (a context variable).

MongoDB aborts a transaction on any write error and on a write conflict with another client; both
reach the caller as :class:`TransactionConflict` (409): the Bundle may be sent again.
"""

from __future__ import annotations

import contextlib
import contextvars
import typing as t

from pymongo import MongoClient, WriteConcern
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure

from ..outcome import Msg, RequestRejected, StoreUnavailable, issue
from .client import deciding

# Write concern of the last write before a create or update is answered. The default (w: 1) answers
# before the journal reaches the disk, and a database killed then (kill -9) lost creates answered
# 201 (`make reliability`). The journal is written in order, so this one flush also keeps the
# request's earlier writes (its reservation, its id block, the role); the others stay unjournaled,
# each flush costing a disk sync. Inside a transaction the commit's write concern applies instead.
DURABLE = WriteConcern("majority", j=True)
_session: contextvars.ContextVar[ClientSession | None] = contextvars.ContextVar("session", default=None)
_OPERATIONS = {"find", "find_one", "insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one",
               "delete_many", "find_one_and_update", "bulk_write", "count_documents", "aggregate"}


class TransactionConflict(RequestRejected):
    def __init__(self) -> None:
        super().__init__(issue(Msg.TRANSACTION_CONFLICT))


class _JoinedCollection:
    def __init__(self, collection: Collection[t.Any]) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> t.Any:
        attr = getattr(self._collection, name)
        if name not in _OPERATIONS:
            return attr

        def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
            session = _session.get()
            if session is not None:
                kwargs.setdefault("session", session)
            return attr(*args, **kwargs)

        return call


class Joined:
    """A database whose collections' operations join the transaction in progress, if any."""

    def __init__(self, db: Database[t.Any]) -> None:
        self._db = db

    def __getitem__(self, name: str) -> t.Any:
        return _JoinedCollection(self._db[name])

    def deciding(self, name: str) -> t.Any:
        """The collection for reads that decide a write: see :func:`.client.deciding`."""
        return _JoinedCollection(deciding(self._db[name]))

    def durable(self, name: str) -> t.Any:
        """The collection, its writes acknowledged only once in the journal: see :data:`DURABLE`."""
        return _JoinedCollection(self._db[name].with_options(write_concern=DURABLE))


@contextlib.contextmanager
def run_in_transaction(client: MongoClient[t.Any]) -> t.Iterator[None]:
    if _session.get() is not None:
        raise RuntimeError("transactions do not nest")
    try:
        with client.start_session() as session, session.start_transaction(write_concern=DURABLE):
            token = _session.set(session)
            try:
                yield
            finally:
                _session.reset(token)
    except ConnectionFailure as e:
        raise StoreUnavailable() from e
    except OperationFailure as e:
        if e.has_error_label("TransientTransactionError") or e.code in (112, 251):  # WriteConflict, NoSuchTransaction
            raise TransactionConflict() from e
        raise
