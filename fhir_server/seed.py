"""Example data loaded on a development server's first start: the IG's example Practitioners,
Organizations, Locations and PractitionerRoles (``reference_data/``), plus the records the examples
only point at."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

from . import audit
from .identifiers import role_number
from .instants import format_instant
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


def load_example_data(ctx: Context) -> bool:
    """Load the IG's example records into a database that holds no reference data yet (development
    only: a production database gets its data from its owners). Safe to repeat and to run from two
    processes at once; needs the indexes (:mod:`.migrations`). Returns True if it loaded them."""
    store = ctx.store
    if not store.references.is_empty():
        return False
    resources = load_resources()
    roles = [r for r in resources if r["resourceType"] == "PractitionerRole"]
    references = [with_version(r, ctx) for r in resources if r["resourceType"] != "PractitionerRole"]
    store.references.load([(r, search_fields(r), audit.record(r, ctx.access, audit.CREATE)) for r in references])
    for role in roles:
        key = business_key(role, ctx)
        held = store.roles.new_token(role["id"]) if holds_period(role) else None
        written = audit.record(role, ctx.access, audit.CREATE)
        if store.roles.insert_existing(role, key, held, search_fields(role), identifier_keys(role), written) and held is not None:
            store.roles.reserve(key, role.get("period"), role["id"], held, ctx.now())
    store.role_ids.skip_past(max(role_number(r["id"]) for r in roles))
    return True


def with_version(resource: dict[str, t.Any], ctx: Context) -> dict[str, t.Any]:
    """A reference data record as the FHIR API serves it: with a version and a last-updated time, for
    ETags and updates. A record that has them keeps its own; the others are version 1 as of now."""
    meta = {"versionId": "1", "lastUpdated": format_instant(ctx.now()), **resource.get("meta", {})}
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta, **rest}
