"""Records of requests sent with an ``Idempotency-Key``, so that a replay gets the first outcome.

One document per key and API key, ``{_id: scope, fingerprint, state, until, expireAt, answer}``:
``state`` is ``running`` while the first request works (its lease ``until`` is its deadline),
``unknown`` when it answered that its outcome is unknown, ``done`` with the ``answer`` (status, body,
headers) otherwise. MongoDB's TTL monitor deletes records a day after they were made.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .client import deciding
from .errors import translate_errors, translate_write_errors

COLLECTION = "idempotency_keys"
KEPT = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Recorded:
    """What a replay finds: the first request's fingerprint and state, and its answer if done."""

    fingerprint: str
    state: str  # running, unknown or done
    until: dt.datetime
    answer: dict[str, t.Any] | None


class IdempotencyStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._records = deciding(db[COLLECTION])

    def ensure_indexes(self) -> None:
        self._records.create_index([("expireAt", ASCENDING)], expireAfterSeconds=0)

    @translate_errors
    def begin(self, scope: str, fingerprint: str, until: dt.datetime, now: dt.datetime) -> Recorded | None:
        """Claim ``scope`` for a request running until ``until``; None if claimed, else the record that
        holds it (a replay). Plain 503 on failure: nothing a client sees has changed."""
        try:
            self._records.insert_one({"_id": scope, "fingerprint": fingerprint, "state": "running", "until": until,
                                      "expireAt": now + KEPT, "answer": None})
            return None
        except DuplicateKeyError:
            doc = self._records.find_one({"_id": scope})
        if doc is None:  # expired between the two: claim it afresh
            return self.begin(scope, fingerprint, until, now)
        return Recorded(doc["fingerprint"], doc["state"], doc["until"], doc.get("answer"))

    @translate_errors
    def withdraw(self, scope: str, until: dt.datetime) -> None:
        """Remove a claim this request may have made (``until`` is its own lease), so that a failed
        claim does not hold the key."""
        self._records.delete_one({"_id": scope, "state": "running", "until": until})

    @translate_errors
    def take_over(self, scope: str, seen: Recorded, until: dt.datetime) -> bool:
        """Claim a record whose request is over without an answer; False if another replay did first."""
        found = self._records.find_one_and_update({"_id": scope, "state": seen.state, "until": seen.until},
                                                  {"$set": {"state": "running", "until": until}},
                                                  return_document=ReturnDocument.AFTER)
        return found is not None

    @translate_write_errors
    def finish(self, scope: str, answer: dict[str, t.Any]) -> None:
        self._records.update_one({"_id": scope}, {"$set": {"state": "done", "answer": answer}})

    @translate_write_errors
    def mark_unknown(self, scope: str, until: dt.datetime | None) -> None:
        """The request answered 503: a replay after its lease (or ``until``, if it ended sooner) looks
        for what it stored, then runs again."""
        changes: dict[str, t.Any] = {"state": "unknown", **({"until": until} if until else {})}
        self._records.update_one({"_id": scope, "state": "running"}, {"$set": changes})
