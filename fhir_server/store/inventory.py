"""Whole-database reads for ``fhir-server check``: what the stored invariants are checked against.

Each reads a whole collection (fields it needs only), so they are for an operator's command, never a
request. Layout of the collections: :mod:`.roles`, :mod:`.role_ids`, :mod:`.reference_data`.
"""

from __future__ import annotations

import typing as t

from pymongo.database import Database

from .client import deciding
from .errors import translate_errors


class Inventory:
    def __init__(self, db: Database[t.Any]) -> None:
        self._roles = deciding(db["practitioner_roles"])
        self._versions = deciding(db["practitioner_role_versions"])
        self._keys = deciding(db["role_keys"])
        self._references = deciding(db["reference_resources"])

    @translate_errors
    def roles(self) -> list[dict[str, t.Any]]:
        """Each role's current document: ``{_id, vid, key, held, identifiers, op}`` (``op``: the
        activity of its current version's Provenance, if it has one)."""
        fields = {"vid": 1, "key": 1, "held": 1, "identifiers": 1, "provenance.op": 1}
        return [{**d, "op": d.pop("provenance", {}).get("op")} for d in self._roles.find({}, fields)]

    @translate_errors
    def role_versions(self) -> dict[str, dict[int, str | None]]:
        """Role id → each kept version → the activity of its Provenance (None if it has none)."""
        found: dict[str, dict[int, str | None]] = {}
        for d in self._versions.find({}, {"role": 1, "vid": 1, "provenance.op": 1}):
            found.setdefault(d["role"], {})[d["vid"]] = d.get("provenance", {}).get("op")
        return found

    @translate_errors
    def reservations(self) -> dict[str, list[dict[str, t.Any]]]:
        """Business key → the periods held in it: ``{role, by, until, ...}`` (see :mod:`.roles`)."""
        return {d["_id"]: list(d.get("periods", [])) for d in self._keys.find({}, {"periods": 1})}

    @translate_errors
    def references(self) -> list[dict[str, t.Any]]:
        """Each reference record: ``{_id, vid, refs, version, written}`` (``version``: its resource's
        ``meta.versionId``; ``written``: ``(vid, op)`` of each Provenance kept, oldest first)."""
        fields = {"vid": 1, "refs": 1, "resource.meta.versionId": 1, "provenance.vid": 1, "provenance.op": 1}
        return [{"_id": d["_id"], "vid": d.get("vid"), "refs": d.get("refs", []),
                 "version": d.get("resource", {}).get("meta", {}).get("versionId"),
                 "written": [(p.get("vid"), p.get("op")) for p in d.get("provenance", [])]}
                for d in self._references.find({}, fields)]
