"""Reference data loaded on first start: the IG's example Practitioners, Organizations, Locations and
PractitionerRoles (``reference_data/``), plus the records the examples only point at."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

from .identifiers import role_number
from .service import Context
from .service.practitioner_role import business_key, holds_period
from .service.search import identifier_keys, search_fields

DATA_DIR = Path(__file__).parent / "reference_data"


def load_resources(folder: Path = DATA_DIR) -> list[dict[str, t.Any]]:
    """Every resource in ``folder``, Bundles unpacked."""
    resources = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources += [e["resource"] for e in doc["entry"]] if doc["resourceType"] == "Bundle" else [doc]
    return resources


def prepare_database(ctx: Context) -> bool:
    """Create indexes and, if the database holds no reference data yet, load it. Safe to repeat and
    to run from two processes at once. Returns True if it loaded the data."""
    store = ctx.store
    store.ensure_indexes()
    if not store.references.is_empty():
        return False
    resources = load_resources()
    roles = [r for r in resources if r["resourceType"] == "PractitionerRole"]
    store.references.upsert([r for r in resources if r["resourceType"] != "PractitionerRole"])
    for role in roles:
        key, vid = business_key(role, ctx), int(role["meta"]["versionId"])
        held = vid if holds_period(role) else None
        if store.roles.insert_existing(role, key, held, search_fields(role), identifier_keys(role)) and held is not None:
            store.roles.reserve(key, role.get("period"), role["id"], vid, ctx.now())
    store.role_ids.skip_past(max(role_number(r["id"]) for r in roles))
    return True
