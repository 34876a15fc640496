"""Backups: every record, every version and who wrote each, as NDJSON files in the FHIR Bulk Data
format (https://hl7.org/fhir/uv/bulkdata/export.html), and their restore into an empty database.

An export is a folder (mode 700) of files (mode 600), one resource a line:

``PractitionerRole.ndjson``, ``Practitioner.ndjson``, ``Organization.ndjson``, ``Location.ndjson``
    the current version of every record, as stored (confidential ones whole: a backup is the
    operator's, not a client's).
``PractitionerRole.history.ndjson``
    every version of every role, the current ones included, each with its ``meta.versionId`` and
    ``meta.lastUpdated``. Practitioners, Organizations and Locations keep only their current version
    (:mod:`.store.reference_data`), so they have no history file.
``Provenance.ndjson``
    who wrote each version (:func:`.audit.provenance`), the Provenances of one record oldest first.
``manifest.json``
    written last, as Bulk Data's output manifest: ``transactionTime``, ``output`` (``type``, ``url``
    relative to the folder, ``count`` of lines) and an ``extension`` with the server's version, the
    history files and the role id counter.

An import checks every line of every file first (JSON, the type expected, an id, a version, a
lastUpdated, a Provenance that says exactly what the server would say of its version; the counts the
manifest gives), then writes into a database that holds no record, deriving what is stored beside
each record (search fields, identifier keys, business keys and the reservations of held periods) as
the server does. A write that fails part way removes every record written, so the database is empty
again. Credentials (clients, API keys, the token signing key), Idempotency-Key replays and
rate-limit counters are not part of a backup.
"""

from __future__ import annotations

import json
import os
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from . import audit, exact_json
from . import identifiers as ids
from .instants import format_instant, last_updated
from .outcome import StoreUnavailable
from .service import Context
from .service.practitioner_role import business_key, holds_period
from .service.reference_data import KINDS
from .service.search import identifier_keys, search_fields
from .store.backup import BATCH, RecordClash
from .validation.json_body import Limits, check_keys, parse_json
from .version import VERSION

ROLE = "PractitionerRole"
REFERENCE_TYPES = ("Practitioner", "Organization", "Location")
PROVENANCE = "Provenance"
MANIFEST = "manifest.json"
HISTORY_SUFFIX = ".history.ndjson"
T = t.TypeVar("T")
#: What every line must be as any request body must (nesting, property names MongoDB would read as
#: operators or paths, duplicate properties, numbers kept exactly), but for sizes: those are settings,
#: and the server that wrote the backup may have had larger ones.
_ANY_SIZE = Limits(max_array_items=2**62, max_string_length=2**62)


class BackupError(Exception):
    """An export or import that cannot be done; the message says why and what to do."""


@dataclass
class Report:
    """Lines written or read, per file name."""

    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f"{name}: {count}" for name, count in self.counts.items()]


# --- export ------------------------------------------------------------------------------------------

def _line(resource: t.Mapping[str, t.Any]) -> str:
    return exact_json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"


def _create_private(path: Path) -> t.TextIO:
    """A new file only its owner may read; never an existing one."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8")


def export(folder: Path, ctx: Context) -> Report:
    """Write every record of the database to ``folder`` (created; if it exists it must be empty).

    Not a snapshot: each record is read whole, but a write made while the export runs may be in it or
    not, and the Provenance of a role version written meanwhile may be missing. Export a server
    that is not being written to (or a copy of its database) for a backup that is consistent to the instant.

    :raises BackupError: ``folder`` is not an empty folder.
    :raises StoreUnavailable: the database failed; the folder then has no manifest.
    """
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} is not an empty folder: export into a new one")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # mkdir's mode is narrowed by the umask, never widened; an existing folder keeps its own
    store = ctx.store.backup
    transaction_time = format_instant(ctx.now())
    report = Report()
    with _create_private(folder / f"{PROVENANCE}.ndjson") as provenances:
        written = 0

        def copy(name: str, docs: t.Iterable[dict[str, t.Any]], audited: t.Callable[[dict[str, t.Any]], list[dict[str, t.Any]]]) -> None:
            nonlocal written
            count = 0
            with _create_private(folder / name) as out:
                for doc in docs:
                    out.write(_line(doc["resource"]))
                    count += 1
                    for record in audited(doc):
                        provenances.write(_line(record))
                        written += 1
            report.counts[name] = count

        def role_version(doc: dict[str, t.Any]) -> list[dict[str, t.Any]]:
            rec = doc.get("provenance")
            return [audit.provenance(ROLE, doc["resource"]["id"], rec)] if rec else []

        # Versions before current documents: a role updated meanwhile then has a current version the
        # history lacks, which import keeps among the versions, rather than a history ahead of it.
        copy(f"{ROLE}{HISTORY_SUFFIX}", store.role_versions(), role_version)
        copy(f"{ROLE}.ndjson", store.roles(), lambda doc: [])
        for rtype in REFERENCE_TYPES:
            copy(f"{rtype}.ndjson", store.references(rtype),
                 lambda doc: [audit.provenance(doc["resource"]["resourceType"], doc["resource"]["id"], rec)
                              for rec in doc.get("provenance", [])])
    report.counts[f"{PROVENANCE}.ndjson"] = written
    manifest = {
        "transactionTime": transaction_time,
        "request": "fhir-server export",
        "requiresAccessToken": False,
        "output": [{"type": name.split(".")[0], "url": name, "count": report.counts[name]}
                   for name in (f"{ROLE}.ndjson", *(f"{r}.ndjson" for r in REFERENCE_TYPES), f"{PROVENANCE}.ndjson")],
        "error": [],
        "extension": {
            "serverVersion": VERSION,
            "history": [{"type": ROLE, "url": f"{ROLE}{HISTORY_SUFFIX}", "count": report.counts[f"{ROLE}{HISTORY_SUFFIX}"]}],
            "roleIdCounter": ctx.store.role_ids.highest_issued(),
        },
    }
    with _create_private(folder / MANIFEST) as out:
        json.dump(manifest, out, indent=2)
        out.write("\n")
    return report


# --- import ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Manifest:
    files: dict[str, tuple[str, int]]  # file name → (resource type, lines)
    role_id_counter: int


def _read_manifest(folder: Path) -> _Manifest:
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        entries = [*doc["output"], *doc.get("extension", {}).get("history", [])]
        files = {e["url"]: (e["type"], int(e["count"])) for e in entries}
        counter = int(doc.get("extension", {}).get("roleIdCounter", 0))
    except FileNotFoundError:
        raise BackupError(f"{folder} holds no {MANIFEST}: not an export of fhir-server, or one that did not finish") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise BackupError(f"{folder / MANIFEST} is not a manifest of fhir-server export: {e!r}") from None
    expected = {f"{ROLE}.ndjson": ROLE, f"{ROLE}{HISTORY_SUFFIX}": ROLE, f"{PROVENANCE}.ndjson": PROVENANCE,
                **{f"{r}.ndjson": r for r in REFERENCE_TYPES}}
    for name, (rtype, _) in files.items():
        if expected.get(name) != rtype:
            raise BackupError(f"{folder / MANIFEST} lists {name} of type {rtype}, which fhir-server export does not write")
    missing = sorted(set(expected) - set(files))
    if missing:
        raise BackupError(f"{folder / MANIFEST} does not list {', '.join(missing)}")
    return _Manifest(files, counter)


def _resources(path: Path, rtype: str) -> t.Iterator[dict[str, t.Any]]:
    """Each line of ``path`` as a checked resource of ``rtype``.

    :raises BackupError: naming the file and line of the first that is not one.
    """
    try:
        with path.open(encoding="utf-8") as lines:
            for number, text in enumerate(lines, 1):
                try:
                    yield _checked(_parsed(text), rtype)
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    raise BackupError(f"{path}, line {number}: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BackupError(f"cannot read {path}: {e}") from None


def _parsed(text: str) -> t.Any:
    doc, issues = parse_json(text.encode("utf-8"))
    issues = issues or check_keys(doc, "$", _ANY_SIZE)
    if issues:
        raise ValueError("; ".join(found.diagnostics for found in issues))
    return doc


def _checked(resource: t.Any, rtype: str) -> dict[str, t.Any]:
    if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
        raise ValueError(f"not a {rtype}")
    rid, meta = resource.get("id"), resource.get("meta")
    if not isinstance(rid, str) or not rid or "/" in rid:
        raise ValueError("no id")
    if rtype == ROLE and not ids.is_valid_role_id(rid):
        raise ValueError(f"{rid} is not an hpi-practitionerrole-id")
    if rtype in KINDS and not KINDS[rtype].is_valid(rid):  # the server would never find it by that id
        raise ValueError(f"{rid} is not an {KINDS[rtype].name}")
    if not isinstance(meta, dict) or not str(meta.get("versionId", "")).isdigit() or int(meta["versionId"]) < 1:
        raise ValueError("no meta.versionId")
    last_updated(resource)  # raises ValueError if there is none or it is not an instant
    return resource


def written_by(provenance: dict[str, t.Any]) -> tuple[str, str, dict[str, t.Any]]:
    """``(type, id, record)`` of a Provenance the server serves: the inverse of :func:`.audit.provenance`.

    :raises ValueError: it is not one the server would serve for the record it rebuilds.
    """
    target = audit.parse_target(provenance["target"][0]["reference"])
    if target is None or target[2] is None:
        raise ValueError("its target is not a version of an audited record")
    rtype, rid, vid = target
    record: dict[str, t.Any] = {"vid": vid, "at": provenance["recorded"], "op": provenance["activity"]["coding"][0]["code"]}
    for agent in provenance["agent"]:
        code = agent["type"]["coding"][0]["code"]
        who = agent["who"]
        if code == "author":
            record["user"] = who["identifier"]["value"]
        elif code == "110150":
            client = who.get("identifier", {}).get("value")
            if client:
                record["client"] = client
            if who.get("display") not in (client, "unknown"):
                record["name"] = who["display"]
            key = next((e["valueString"] for e in agent.get("extension", []) if e.get("url") == audit.API_KEY_EXTENSION), None)
            if key:
                record["key"] = key
    if record["op"] not in (audit.CREATE, audit.UPDATE) or not exact_json.same(audit.provenance(rtype, rid, record), provenance):
        raise ValueError("not a Provenance of fhir-server's: it would not be served as written")
    return rtype, rid, record


def _provenances(path: Path) -> t.Iterator[tuple[str, str, dict[str, t.Any]]]:
    for number, resource in enumerate(_resources(path, PROVENANCE), 1):
        try:
            yield written_by(resource)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise BackupError(f"{path}, line {number}: {e!r}") from None


def _batches(items: t.Iterable[T]) -> t.Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _refuse_records(ctx: Context) -> None:
    holding = ctx.store.backup.holding_records()
    if holding:
        raise BackupError(f"the database {ctx.store.db.name} holds records already ({', '.join(holding)}): "
                          "import restores only into an empty database; nothing was changed")


def check(folder: Path) -> Report:
    """Read every file of the export in ``folder`` as :func:`restore` would, writing nothing.

    :raises BackupError: the first problem found.
    """
    manifest = _read_manifest(folder)
    report = Report()
    for name, (rtype, count) in manifest.files.items():
        found = sum(1 for _ in (_provenances(folder / name) if rtype == PROVENANCE else _resources(folder / name, rtype)))
        if found != count:
            raise BackupError(f"{folder / name} has {found} lines where {MANIFEST} says {count}: the export is incomplete")
        report.counts[name] = found
    return report


def restore(folder: Path, ctx: Context) -> Report:
    """Restore the export in ``folder`` into the database, which must hold no record.

    :raises BackupError: the database holds records, or a file is not what an export writes (then
        nothing is written), or the records clash (then nothing is left written).
    :raises StoreUnavailable: the database failed; what was written is removed if it still can be.
    """
    _refuse_records(ctx)
    report = check(folder)  # every line, before anything is written
    manifest = _read_manifest(folder)
    store = ctx.store
    store.ensure_indexes()  # first: the unique indexes refuse two records with one identifier
    try:
        _write(folder, manifest, ctx)
    except BaseException as failure:
        try:
            store.backup.clear()
        except StoreUnavailable:
            raise BackupError(f"the import failed ({failure}) and what it wrote could not be removed: drop the database "
                              f"{store.db.name} before importing again") from failure
        raise
    return report


def _business_key(role: dict[str, t.Any], ctx: Context) -> str:
    try:
        return business_key(role, ctx)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise BackupError(f"PractitionerRole/{role['id']} has no practitioner, organisation, location or code as the "
                          f"server stores them ({e!r}): not a role fhir-server wrote") from None


def _write(folder: Path, manifest: _Manifest, ctx: Context) -> None:
    store = ctx.store
    try:
        for rtype in REFERENCE_TYPES:
            for refs in _batches(_resources(folder / f"{rtype}.ndjson", rtype)):
                store.backup.insert_references([(r, search_fields(r)) for r in refs])
        for versions in _batches(_resources(folder / f"{ROLE}{HISTORY_SUFFIX}", ROLE)):
            store.backup.insert_role_versions(versions)
        highest = manifest.role_id_counter
        for roles in _batches(_resources(folder / f"{ROLE}.ndjson", ROLE)):
            rows = [(r, _business_key(r, ctx), store.roles.new_token(r["id"]) if holds_period(r) else None) for r in roles]
            store.backup.insert_roles([(r, key, held, search_fields(r), identifier_keys(r)) for r, key, held in rows])
            for r, key, held in rows:
                if held is not None and not store.roles.reserve(key, r.get("period"), r["id"], held, ctx.now()):
                    raise BackupError(f"PractitionerRole/{r['id']} holds a period that another role of its business key "
                                      "holds too: the files do not come from one database")
            highest = max(highest, *(ids.role_number(r["id"]) for r in roles))
    except RecordClash as e:
        raise BackupError(f"two records share an id or identifier ({e}): the files do not come from one database") from None
    for records in _batches(_provenances(folder / f"{PROVENANCE}.ndjson")):
        roles_ = [(rid, rec) for rtype, rid, rec in records if rtype == ROLE]
        refs_ = [(f"{rtype}/{rid}", rec) for rtype, rid, rec in records if rtype != ROLE]
        found = store.backup.add_role_provenance(roles_) + store.backup.add_reference_provenance(refs_)
        if found != len(records):
            raise BackupError(f"{folder / (PROVENANCE + '.ndjson')} names versions that no file holds")
    store.role_ids.skip_past(highest)


__all__ = ["BackupError", "Report", "check", "export", "restore", "written_by"]
