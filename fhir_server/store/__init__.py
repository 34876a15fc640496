"""Everything that touches MongoDB. One :class:`Store`, hence one MongoClient, per process."""

from __future__ import annotations

import contextlib
import typing as t

import pymongo
from pymongo import ASCENDING, MongoClient
from pymongo.errors import PyMongoError

from ..outcome import StoreUnavailable
from . import rate_limits
from .api_keys import ApiKeyStore
from .backup import BackupStore
from .client import client_options, durable_write_concern
from .clients import ClientStore
from .deadline import database_deadline, with_deadline
from .errors import translate_errors
from .idempotency import IdempotencyStore
from .inventory import Inventory
from .reference_data import ReferenceStore
from .role_ids import RoleIdAllocator
from .roles import RoleStore
from .schema import SchemaStore
from .transactions import Joined, Leases, run_in_transaction

__all__ = ["Store", "with_deadline"]
T = t.TypeVar("T")


class Store:
    def __init__(self, uri: str, database: str, timeout_ms: int = 2000, *, sweep: bool = False) -> None:
        """``sweep``: end transactions a dead process left open, from a thread of this one (servers)."""
        self.timeout_seconds = timeout_ms / 1000  # each request's deadline for its database work
        self.client: MongoClient[dict[str, t.Any]] = MongoClient(uri, **client_options(timeout_ms, "fhir-server"))
        # Every acknowledged write is majority-committed and journaled, whatever the URI says (it may
        # only strengthen that); see client.durable_write_concern.
        self.db = self.client.get_database(database, write_concern=durable_write_concern(self.client.write_concern))
        # Roles and reference data join a transaction in progress; ids and keys never do: an id block
        # taken inside an aborted transaction would be issued twice.
        joined = Joined(self.db)
        self.roles = RoleStore(joined)
        self.role_ids = RoleIdAllocator(self.db)
        self.references = ReferenceStore(joined)
        self.api_keys = ApiKeyStore(self.db)
        self.clients = ClientStore(self.db)
        self.idempotency = IdempotencyStore(self.db)
        self.leases = Leases(self.db)
        self.schema = SchemaStore(self.db)
        self.inventory = Inventory(self.db)
        self.backup = BackupStore(self.db)
        if sweep:
            self.leases.sweep()

    @translate_errors
    def ensure_indexes(self) -> None:
        """Create the indexes; run once at start-up or deployment, not per request."""
        self.references.ensure_indexes()
        self.roles.ensure_indexes()
        self.idempotency.ensure_indexes()
        self.db["api_keys"].create_index([("key_id", ASCENDING)], unique=True)
        self.clients.ensure_indexes()
        self.leases.ensure_indexes()
        # Ended rate-limit windows are deleted by MongoDB's TTL monitor (the storage also asks, lazily).
        self.db[rate_limits.COUNTERS].create_index([("expireAt", ASCENDING)], expireAfterSeconds=0)

    def in_transaction(self, work: t.Callable[[], T], seconds: float) -> T:
        """Run ``work`` so that all its writes of roles and reference data commit together or not at
        all, within ``seconds`` (see :func:`.transactions.run_in_transaction`)."""
        return run_in_transaction(self.client, work, seconds, self.leases)

    @contextlib.contextmanager
    def within(self, seconds: float) -> t.Iterator[None]:
        """Every database operation in the block ends by ``seconds`` from now (``maxTimeMS`` sent,
        so the database stops too).

        :raises StoreUnavailable: an operation did not end in time (503).
        """
        try:
            with database_deadline(seconds):
                yield
        except PyMongoError as e:
            if e.timeout:
                raise StoreUnavailable() from e
            raise

    def schema_version_within(self, seconds: float) -> int | None:
        """The database's schema version, or None if it does not answer within ``seconds`` (readiness)."""
        try:
            with pymongo.timeout(seconds):
                return self.schema.version()
        except (PyMongoError, StoreUnavailable):
            return None

    @translate_errors
    def sizes(self, *names: str) -> dict[str, dict[str, float]]:
        """Each collection's documents, and its data and indexes in MB (``collStats``)."""
        found = {}
        for name in names:
            stats = self.db.command("collStats", name)
            found[name] = {"documents": stats.get("count", 0), "data_mb": round(stats.get("size", 0) / 2**20, 1),
                           "index_mb": round(stats.get("totalIndexSize", 0) / 2**20, 1)}
        return found

    def close(self) -> None:
        self.client.close()
