"""Everything that touches MongoDB. One :class:`Store`, hence one MongoClient, per process."""

from __future__ import annotations

import typing as t

from pymongo import ASCENDING, MongoClient

from .api_keys import ApiKeyStore
from .errors import translate_errors
from .reference_data import ReferenceStore
from .role_ids import RoleIdAllocator
from .roles import RoleStore

__all__ = ["Store"]


class Store:
    def __init__(self, uri: str, database: str, timeout_ms: int = 2000) -> None:
        # Fail fast when the database is gone (503, not a hang), but give a slow write time to finish.
        self.client: MongoClient[dict[str, t.Any]] = MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(10_000, 5 * timeout_ms), tz_aware=True, appname="fhir-server",
        )
        self.db = self.client[database]
        self.roles = RoleStore(self.db)
        self.role_ids = RoleIdAllocator(self.db)
        self.references = ReferenceStore(self.db)
        self.api_keys = ApiKeyStore(self.db)

    @translate_errors
    def ensure_indexes(self) -> None:
        """Create the indexes; run once at start-up or deployment, not per request."""
        self.references.ensure_indexes()
        self.roles.ensure_indexes()
        self.db["api_keys"].create_index([("key_id", ASCENDING)], unique=True)

    def close(self) -> None:
        self.client.close()
