"""Issuing hpi-practitionerrole-ids that are unique across processes and hosts.

A counter document is advanced atomically by a block at a time; a process issues the numbers of its
block from memory, so most creates cost no round trip for their id. Numbers of a block left unused
when a process stops are never issued: ids are unique, not gapless.
"""

from __future__ import annotations

import threading
import typing as t

from pymongo import ReturnDocument
from pymongo.database import Database

from ..identifiers import format_role_id
from .client import deciding
from .errors import translate_errors

BLOCK = 20
COUNTER = "practitioner_role"


class RoleIdAllocator:
    def __init__(self, db: Database[t.Any]) -> None:
        self._counters = db["counters"]
        self._lock = threading.Lock()  # guards only this process's block; uniqueness comes from $inc
        self._next = 1
        self._last = 0

    @translate_errors
    def issue(self) -> str:
        with self._lock:
            if self._next > self._last:
                doc = self._counters.find_one_and_update(
                    {"_id": COUNTER}, {"$inc": {"value": BLOCK}}, upsert=True, return_document=ReturnDocument.AFTER
                )
                assert doc is not None  # an upsert returning the document AFTER always has one
                self._last = doc["value"]
                self._next = self._last - BLOCK + 1
            number = self._next
            self._next += 1
        return format_role_id(number)

    @translate_errors
    def highest_issued(self) -> int:
        """The highest role number the counter has handed out to any process (0 if none yet)."""
        doc = deciding(self._counters).find_one({"_id": COUNTER}, {"value": 1})  # the primary's, majority-committed
        return int(doc["value"]) if doc else 0

    @translate_errors
    def skip_past(self, number: int) -> None:
        """Never issue ``number`` or below (the numbers of records loaded with their ids)."""
        self._counters.update_one({"_id": COUNTER}, {"$max": {"value": number}}, upsert=True)

    def skip_past_taken(self, number: int) -> None:
        """An issued id was taken already (the counter is behind the records, as after a restore):
        move the counter past ``number`` and drop this process's block, so the next id is new."""
        self.skip_past(number)
        with self._lock:
            self._next, self._last = 1, 0
