"""What the database holds, read directly (as the tests do), to check the server's promises: every
acknowledged create readable as it was answered, nothing half-written, nothing stored on a refusal."""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field

from pymongo import MongoClient

from .client import Client
from .processes import DATABASE
from .report import Result


@dataclass(frozen=True)
class Counts:
    roles: int
    versions: int
    held: int  # periods held in role_keys


@dataclass
class Acknowledged:
    """Creates answered 201, by id: the FHIR resource, or the plain API's ``data``."""

    fhir: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    plain: dict[str, dict[str, t.Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.fhir) + len(self.plain)


class Stored:
    def __init__(self, uri: str) -> None:
        self._client: MongoClient[dict[str, t.Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        self._db = self._client[DATABASE]

    def close(self) -> None:
        self._client.close()

    def counts(self) -> Counts:
        held = sum(len(d.get("periods", [])) for d in self._db["role_keys"].find({}, {"periods.by": 1}))
        return Counts(self._db["practitioner_roles"].count_documents({}),
                      self._db["practitioner_role_versions"].count_documents({}), held)

    def fail(self, command: str, skip: int, fault: dict[str, t.Any], app: str = "fhir-server") -> None:
        """Fail the (``skip`` + 1)th ``command`` of the server's client (by its appName) once."""
        self._client.admin.command({"configureFailPoint": "failCommand", "mode": {"skip": skip, "times": 1},
                                    "data": {"failCommands": [command], "appName": app, **fault}})

    def no_faults(self) -> None:
        self._client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})

    def roles_with(self, system: str, value: str) -> list[dict[str, t.Any]]:
        """The stored roles with this identifier: their id, version and held reservation."""
        query = {"resource.identifier": {"$elemMatch": {"system": system, "value": value}}}
        return list(self._db["practitioner_roles"].find(query, {"vid": 1, "held": 1}))

    def unowned_periods(self) -> list[str]:
        """Held periods that no stored role owns (``key: token``): what a request left behind."""
        owners = {d["_id"]: d.get("held") for d in self._db["practitioner_roles"].find({}, {"held": 1})}
        return [f"{k['_id']}: {p['by']}" for k in self._db["role_keys"].find() for p in k.get("periods", [])
                if owners.get(p["role"]) != p["by"]]

    def missing_versions(self, role_id: str, vid: int) -> list[int]:
        kept = {d["vid"] for d in self._db["practitioner_role_versions"].find({"role": role_id}, {"vid": 1})}
        return sorted(set(range(1, vid + 1)) - kept)

    def role_ids(self) -> set[str]:
        return {d["_id"] for d in self._db["practitioner_roles"].find({}, {"_id": 1})}

    def half_written(self, since: set[str], acknowledged: Acknowledged) -> tuple[list[str], list[str]]:
        """Roles (not in ``since``) without their version, and reservations no stored role owns, as
        (broken promises, explained notes). Both are what a process dying mid-create leaves: allowed
        for a create that got no 201 (README: a lost version is written by the next update; an
        abandoned period's lease ends with its request, and a later create that meets it clears it), never for one that did."""
        broken: list[str] = []
        notes: list[str] = []
        roles = {d["_id"]: d for d in self._db["practitioner_roles"].find({"_id": {"$nin": list(since)}}, {"vid": 1, "held": 1})}
        versions = {d["_id"] for d in self._db["practitioner_role_versions"].find({"role": {"$in": list(roles)}}, {"_id": 1})}
        unversioned = sorted(rid for rid, d in roles.items() if f"{rid}/{d['vid']}" not in versions)
        notes.append(f"created ids: {len(roles)} roles, {len(versions)} versions")
        acked = set(acknowledged.fhir) | set(acknowledged.plain)
        if bad := [rid for rid in unversioned if rid in acked]:
            broken.append(f"answered 201 but its version is missing: {', '.join(bad[:10])}")
        if quiet := [rid for rid in unversioned if rid not in acked]:
            notes.append(f"{len(quiet)} role(s) stored without their version by a create that got no 201: {', '.join(quiet[:10])}")
        held = {p["by"]: p for d in self._db["role_keys"].find() for p in d.get("periods", [])}
        if missing := [rid for rid in acknowledged.fhir if roles.get(rid, {}).get("held") not in held]:
            broken.append(f"answered 201 but holds no reservation: {', '.join(missing[:10])}")
        owned = {d.get("held") for d in self._db["practitioner_roles"].find({}, {"held": 1})}
        orphans = sorted(p["role"] for by, p in held.items() if by not in owned)
        if bad := [rid for rid in orphans if rid in acked]:
            broken.append(f"reservation left without its acknowledged role: {', '.join(bad[:10])}")
        now = dt.datetime.now(dt.timezone.utc)
        if live := sorted(p["role"] for by, p in held.items() if by not in owned and p["until"].replace(tzinfo=dt.timezone.utc) > now):
            broken.append(f"reservation without its role still leased after its request: {', '.join(live[:10])}")
        if orphans:
            notes.append(f"{len(orphans)} reservation(s) left by a create that got no 201, their leases ended (cleared "
                         f"when a later create of the same key meets them): {', '.join(orphans[:10])}")
        return broken, notes


def unreadable(client: Client, acknowledged: Acknowledged) -> list[str]:
    """Acknowledged creates that a read does not return exactly as the 201 did."""
    lost = []
    for rid, resource in acknowledged.fhir.items():
        answer = client.send("GET", f"/PractitionerRole/{rid}")
        if answer.status != 200 or answer.json() != resource:
            lost.append(f"{rid} ({answer.describe()})")
    for rid, data in acknowledged.plain.items():
        answer = client.send("GET", f"/v1/practitioner-roles/{rid}", plain=True)
        if answer.status != 200 or (answer.json() or {}).get("data") != data:
            lost.append(f"{rid} ({answer.describe()})")
    return lost


def judge_stored(result: Result, client: Client, stored: Stored, acknowledged: Acknowledged, since: set[str]) -> None:
    """After a failure: every acknowledged create read back, nothing half-written, into ``result``."""
    lost = unreadable(client, acknowledged)
    result.lost = f"{len(lost)} of {len(acknowledged)} creates answered 201" + (f": {', '.join(lost[:10])}" if lost else "")
    if lost:
        result.broken.append(f"{len(lost)} acknowledged create(s) not read back as answered")
    broken, notes = stored.half_written(since, acknowledged)
    result.broken += broken
    result.notes += notes
