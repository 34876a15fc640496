"""The schema version of the database, and the lock that lets one ``fhir-server migrate`` at a time
change it.

Collection ``schema``, two documents:

- ``{_id: "version", version: N, applied: [{version, name, at, by}, ...]}``: the last migration applied
  and, in order, each one applied (who and when). Written once per migration, after its step ends.
- ``{_id: "lock", owner, taken, until}``: the ``migrate`` that holds the lock, until when. The holder
  renews it while it works; once ``until`` has passed it is anybody's, so a killed ``migrate`` blocks
  the next one only until then. Removed when its holder ends.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .client import deciding
from .errors import translate_errors, translate_write_errors

SCHEMA = "schema"
_VERSION = "version"
_LOCK = "lock"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SchemaStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._schema = db[SCHEMA]
        self._deciding = deciding(self._schema)

    @translate_errors
    def version(self) -> int:
        """The schema version the database is at: 0 if no migration was ever recorded (a new database,
        or one from before migrations were). One read by ``_id``, for start-up and readiness checks."""
        doc = self._deciding.find_one({"_id": _VERSION}, {"version": 1})
        return int(doc["version"]) if doc else 0

    @translate_errors
    def applied(self) -> list[dict[str, t.Any]]:
        """Each migration recorded, in the order applied: ``{version, name, at, by}``."""
        doc = self._deciding.find_one({"_id": _VERSION}, {"applied": 1})
        return list(doc.get("applied", [])) if doc else []

    @translate_write_errors
    def record(self, version: int, name: str, owner: str) -> bool:
        """Record migration ``version`` as applied, unless the database is at it or beyond already;
        whether this recorded it."""
        entry = {"version": version, "name": name, "at": _now(), "by": owner}
        try:
            result = self._schema.update_one({"_id": _VERSION, "version": {"$lt": version}},
                                             {"$set": {"version": version}, "$push": {"applied": entry}}, upsert=True)
        except DuplicateKeyError:  # the document exists at this version or a later one
            return False
        return result.modified_count == 1 or result.upserted_id is not None

    # --- the lock ------------------------------------------------------------------------------------

    @translate_write_errors
    def take_lock(self, owner: str, seconds: float) -> bool:
        """Take the migration lock for ``seconds`` if it is free, lapsed, or ``owner``'s already (a
        renewal); False if another owner holds it. One atomic write: of two racing, one wins."""
        now = _now()
        free = {"_id": _LOCK, "$or": [{"until": {"$lt": now}}, {"owner": owner}]}
        try:
            self._schema.update_one(free, {"$set": {"owner": owner, "taken": now, "until": now + dt.timedelta(seconds=seconds)}},
                                    upsert=True)
        except DuplicateKeyError:  # held by another, whose lease is live
            return False
        return True

    @translate_write_errors
    def renew_lock(self, owner: str, seconds: float) -> bool:
        """Extend ``owner``'s lock by ``seconds`` from now; False if it is no longer ``owner``'s (it
        lapsed and another took it)."""
        until = _now() + dt.timedelta(seconds=seconds)
        return self._schema.update_one({"_id": _LOCK, "owner": owner}, {"$set": {"until": until}}).matched_count == 1

    @translate_write_errors
    def release_lock(self, owner: str) -> None:
        self._schema.delete_one({"_id": _LOCK, "owner": owner})

    @translate_errors
    def lock_holder(self) -> tuple[str, dt.datetime] | None:
        """Who holds the lock, until when; None if nobody ever took it or its holder released it."""
        doc = self._deciding.find_one({"_id": _LOCK})
        return (doc["owner"], doc["until"]) if doc else None
