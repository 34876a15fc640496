"""Practitioner, Organization and Location records that PractitionerRoles point at.

One collection for all three, ``reference_resources``: ``{_id: "Practitioner/98ZZQJ", refs: [...],
name, resource}``. ``refs`` holds ``Type/value`` for every HPI identifier of the record, live and
dormant, so a role's three references resolve in one round trip, dormant ids included.
"""

from __future__ import annotations

import typing as t

from pymongo import UpdateOne
from pymongo.database import Database

from .. import identifiers as ids
from ..validation.references import Target
from .errors import translate_errors

_SYSTEMS = {
    "Practitioner": ids.PERSON_SYSTEM,
    "Organization": ids.ORGANISATION_SYSTEM,
    "Location": ids.FACILITY_SYSTEM,
}


def _refs(resource: dict[str, t.Any]) -> list[str]:
    rtype = resource["resourceType"]
    values = {resource["id"]} | {
        i["value"] for i in resource.get("identifier", []) if i.get("system") in ids.SYSTEM_ALIASES[_SYSTEMS[rtype]]
    }
    return sorted(f"{rtype}/{v}" for v in values)


def display_name(resource: dict[str, t.Any]) -> str | None:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    if name:
        first = name[0]
        return first.get("text") or " ".join([*first.get("prefix", []), *first.get("given", []), first.get("family", "")]).strip()
    return None


class ReferenceStore:
    def __init__(self, db: Database[t.Any]) -> None:
        self._resources = db["reference_resources"]

    @translate_errors
    def is_empty(self) -> bool:
        return self._resources.find_one({}, {"_id": 1}) is None

    @translate_errors
    def resolve(self, keys: list[str]) -> dict[str, Target]:
        """Each of ``keys`` (``Type/id``, live or dormant) that exists → the live record."""
        found: dict[str, Target] = {}
        for doc in self._resources.find({"refs": {"$in": keys}}, {"refs": 1, "name": 1}):
            target = Target(doc["_id"], doc.get("name"))
            found.update((k, target) for k in keys if k in doc["refs"])
        return found

    @translate_errors
    def get_many(self, keys: list[str]) -> list[dict[str, t.Any]]:
        """The records with these live keys (``Type/id``), in that order."""
        found = {d["_id"]: d["resource"] for d in self._resources.find({"_id": {"$in": keys}}, {"resource": 1})}
        return [found[k] for k in keys if k in found]

    @translate_errors
    def upsert(self, resources: list[dict[str, t.Any]]) -> None:
        self._resources.bulk_write([
            UpdateOne(
                {"_id": f"{r['resourceType']}/{r['id']}"},
                {"$set": {"refs": _refs(r), "name": display_name(r), "resource": r}},
                upsert=True,
            )
            for r in resources
        ])
