"""OAuth2 clients (SMART Backend Services), the server's token-signing keys, and the client assertions
already used.

- ``clients``: ``{_id: client_id, name, scopes: [...], jwks: {"keys": [...]}, created, revoked}``. A
  client authenticates with a JWT signed by one of its registered public keys; its API key lives in
  ``api_keys`` with its ``client_id`` (see :mod:`.api_keys`).
- ``signing_keys``: ``{_id: kid, pem, created, superseded}``: the private keys the server signs access
  tokens with. The newest is the one in use; one superseded by a newer key still verifies the tokens
  it signed until they have expired. Every worker and host reads them from here, so they agree.
- ``client_assertions``: ``{_id: "client_id jti", expires}``: the ``jti`` of every assertion accepted,
  kept until the assertion expires (a TTL index deletes it), so an assertion works once.
"""

from __future__ import annotations

import builtins
import datetime as dt
import secrets
import typing as t
from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .errors import translate_errors, translate_write_errors


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    scopes: frozenset[str]
    jwks: dict[str, t.Any]
    revoked: bool = False


@dataclass(frozen=True)
class SigningKey:
    kid: str
    pem: str  # the private key, PKCS#8 PEM
    created: dt.datetime
    superseded: dt.datetime | None


def _client(doc: dict[str, t.Any]) -> Client:
    return Client(doc["_id"], doc["name"], frozenset(doc.get("scopes", [])), doc.get("jwks", {"keys": []}),
                  doc.get("revoked") is not None)


class ClientStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._clients = db["clients"]
        self._signing_keys = db["signing_keys"]
        self._assertions = db["client_assertions"]

    def ensure_indexes(self) -> None:
        self._assertions.create_index([("expires", ASCENDING)], expireAfterSeconds=0)
        self._signing_keys.create_index([("created", DESCENDING)])

    # --- clients -----------------------------------------------------------------------------------

    @translate_write_errors
    def create(self, name: str, scopes: t.Iterable[str], jwks: dict[str, t.Any]) -> Client:
        # Hex, so that an id never starts with "-" and passes as an option to commands (client revoke ID).
        client = Client(secrets.token_hex(16), name, frozenset(scopes), jwks)
        self._clients.insert_one({"_id": client.client_id, "name": name, "scopes": sorted(client.scopes), "jwks": jwks,
                                  "created": dt.datetime.now(dt.timezone.utc), "revoked": None})
        return client

    @translate_errors
    def get(self, client_id: str) -> Client | None:
        doc = self._clients.find_one({"_id": client_id})
        return _client(doc) if doc else None

    @translate_errors
    def count(self) -> int:
        return self._clients.count_documents({})

    @translate_errors
    def list(self) -> list[dict[str, t.Any]]:
        return list(self._clients.find({}, {"jwks": 0}).sort("created", 1))

    @translate_write_errors
    def set_scopes(self, client_id: str, scopes: t.Iterable[str]) -> bool:
        result = self._clients.update_one({"_id": client_id, "revoked": None}, {"$set": {"scopes": sorted(set(scopes))}})
        return result.matched_count == 1

    @translate_write_errors
    def revoke(self, client_id: str) -> bool:
        result = self._clients.update_one({"_id": client_id, "revoked": None},
                                          {"$set": {"revoked": dt.datetime.now(dt.timezone.utc)}})
        return result.modified_count == 1

    @translate_write_errors
    def use_assertion(self, client_id: str, jti: str, expires: dt.datetime) -> bool:
        """Record an assertion's ``jti``; False if the client has used it before."""
        try:
            self._assertions.insert_one({"_id": f"{client_id} {jti}", "expires": expires})
        except DuplicateKeyError:
            return False
        return True

    # --- the server's signing keys -------------------------------------------------------------------

    @translate_errors
    def signing_keys(self, superseded_after: dt.datetime) -> builtins.list[SigningKey]:  # list: the method above
        """The keys in use or superseded after ``superseded_after``, newest first."""
        query = {"$or": [{"superseded": None}, {"superseded": {"$gt": superseded_after}}]}
        return [SigningKey(d["_id"], d["pem"], d["created"], d.get("superseded"))
                for d in self._signing_keys.find(query).sort("created", DESCENDING)]

    @translate_write_errors
    def add_signing_key(self, kid: str, pem: str) -> None:
        """Make a new key the one in use; the others are superseded now (they still verify what they signed)."""
        now = dt.datetime.now(dt.timezone.utc)
        self._signing_keys.insert_one({"_id": kid, "pem": pem, "created": now, "superseded": None})
        # Only older keys: of two hosts adding a first key at once, the later one's is used, the other's verifies.
        self._signing_keys.update_many({"created": {"$lt": now}, "superseded": None}, {"$set": {"superseded": now}})
