"""API keys, stored as SHA-256 digests: a key is random and long, so a salt would add nothing, and a
leaked database gives no usable key."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import typing as t

from pymongo.database import Database

from .errors import translate_errors


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._keys = db["api_keys"]

    @translate_errors
    def create(self, name: str) -> tuple[str, str]:
        """A new key called ``name``: returns (key id, the key). The key itself is shown only now."""
        key = "hpi_" + secrets.token_urlsafe(32)
        key_id = digest(key)[:12]
        self._keys.insert_one({"_id": digest(key), "key_id": key_id, "name": name,
                               "created": dt.datetime.now(dt.timezone.utc), "revoked": None})
        return key_id, key

    @translate_errors
    def is_active(self, key: str) -> bool:
        return self._keys.find_one({"_id": digest(key), "revoked": None}, {"_id": 1}) is not None

    @translate_errors
    def count(self) -> int:
        return self._keys.count_documents({})

    @translate_errors
    def list(self) -> list[dict[str, t.Any]]:
        return list(self._keys.find({}, {"_id": 0}).sort("created", 1))

    @translate_errors
    def revoke(self, key_id: str) -> bool:
        result = self._keys.update_one({"key_id": key_id, "revoked": None},
                                       {"$set": {"revoked": dt.datetime.now(dt.timezone.utc)}})
        return result.modified_count == 1
