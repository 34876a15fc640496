"""API keys, stored as SHA-256 digests: a key is random and long, so a salt would add nothing, and a
leaked database gives no usable key."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import typing as t
from dataclasses import dataclass

from pymongo.database import Database

from .errors import translate_errors
from .rate_limits import parse_rate_limit


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """An active key as requests see it: its public id, its own rate limit (None: the server's), and
    the client it was issued with (None for a key made before clients were; it may do nothing)."""

    key_id: str
    rate_limit: str | None = None
    client_id: str | None = None


class ApiKeyStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._keys = db["api_keys"]

    @translate_errors
    def create(self, name: str, rate_limit: str | None = None, client_id: str | None = None) -> tuple[str, str]:
        """A new key called ``name``: returns (key id, the key). The key itself is shown only now.

        :raises ValueError: ``rate_limit`` is not one (see :func:`.rate_limits.parse_rate_limit`).
        """
        if rate_limit is not None:
            parse_rate_limit(rate_limit)
        key = "hpi_" + secrets.token_urlsafe(32)
        key_id = digest(key)[:12]
        self._keys.insert_one({"_id": digest(key), "key_id": key_id, "name": name, "rate_limit": rate_limit,
                               "client_id": client_id, "created": dt.datetime.now(dt.timezone.utc), "revoked": None})
        return key_id, key

    @translate_errors
    def find_active(self, key: str) -> ApiKey | None:
        doc = self._keys.find_one({"_id": digest(key), "revoked": None}, {"key_id": 1, "rate_limit": 1, "client_id": 1})
        return ApiKey(doc["key_id"], doc.get("rate_limit"), doc.get("client_id")) if doc else None

    @translate_errors
    def count(self) -> int:
        return self._keys.count_documents({})

    @translate_errors
    def list(self) -> list[dict[str, t.Any]]:
        return list(self._keys.find({}, {"_id": 0}).sort("created", 1))

    @translate_errors
    def set_rate_limit(self, key_id: str, rate_limit: str | None) -> bool:
        """Give an active key its own limit, or (None) the server's again.

        :raises ValueError: ``rate_limit`` is not one.
        """
        if rate_limit is not None:
            parse_rate_limit(rate_limit)
        result = self._keys.update_one({"key_id": key_id, "revoked": None}, {"$set": {"rate_limit": rate_limit}})
        return result.matched_count == 1

    @translate_errors
    def revoke_client(self, client_id: str) -> int:
        result = self._keys.update_many({"client_id": client_id, "revoked": None},
                                        {"$set": {"revoked": dt.datetime.now(dt.timezone.utc)}})
        return result.modified_count

    @translate_errors
    def revoke(self, key_id: str) -> bool:
        result = self._keys.update_one({"key_id": key_id, "revoked": None},
                                       {"$set": {"revoked": dt.datetime.now(dt.timezone.utc)}})
        return result.modified_count == 1
