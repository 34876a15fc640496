"""Loading reference data from files (``fhir-server load``): Practitioners, Organizations and Locations
from Bundles or NDJSON, each checked and stored by the same service steps as a create or update over
FHIR, so that a file is checked exactly as a client's request is, and written in batches.

Two steps, so that a file that cannot be loaded stops everything before anything is written::

    read_files(paths) -> list[Item]    each resource with where it came from; LoadError for a file
                                       that cannot be read or holds neither a Bundle nor a resource
    load(items, ctx) -> Report         each item created, updated, unchanged or rejected with its issues,
                                       :data:`BATCH` at a time, with the outcomes of loading each in turn

A record is named by its official HPI identifier, as :func:`create_reference` names it: a new one is
created, an existing one updated on its current version, so loading a file twice changes nothing.
"""

from __future__ import annotations

import enum
import itertools
import json
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from . import exact_json
from . import identifiers as ids
from .outcome import Issue, Msg, RequestRejected, issue
from .service import Context
from .service.reference_data import (
    KINDS,
    Planned,
    checked_create,
    checked_update,
    create_reference,
    official_id,
    read_reference,
    update_reference,
)
from .store.reference_data import StoredReference

__all__ = ["Change", "Item", "LoadError", "Rejection", "Report", "load", "load_item", "read_file", "read_files"]

NDJSON_SUFFIXES = (".ndjson", ".jsonl")
#: Items checked and written together: one read and at most two bulk writes a batch, each short enough
#: to be answered well within the database timeout on a busy machine.
BATCH = 50
_LOADABLE = ", ".join(list(KINDS)[:-1]) + " or " + list(KINDS)[-1]


class LoadError(Exception):
    """A file that cannot be loaded at all: unreadable, not JSON, or neither a Bundle nor a resource."""


@dataclass(frozen=True)
class Item:
    """One resource as read from a file: where it came from, and its JSON or why the text is no JSON."""

    location: str
    resource: t.Any = None
    unreadable: Issue | None = None


class Change(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Rejection:
    location: str
    issues: tuple[Issue, ...]


@dataclass
class Report:
    counts: dict[Change, int] = field(default_factory=lambda: dict.fromkeys(Change, 0))
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def lines(self) -> list[str]:
        """What the user reads: the counts, then each rejection with its location and every reason."""
        counts = [f"{n} {change.value}" for change, n in self.counts.items()] + [f"{len(self.rejected)} rejected"]
        lines = [", ".join(counts)]
        if self.rejected:
            lines.append("Rejected:")
        for rejection in self.rejected:
            lines.append(f"  {rejection.location}")
            lines += [f"    {_reason(i)}" for i in rejection.issues]
        return lines


def _reason(found: Issue) -> str:
    return f"{found.diagnostics} (at {found.expression})" if found.expression else found.diagnostics


# --- reading -------------------------------------------------------------------------------------------

def read_files(paths: t.Iterable[Path]) -> list[Item]:
    """Every resource in ``paths``, in order. All are read before any is loaded.

    :raises LoadError: for the first file that cannot be loaded at all.
    """
    return [item for path in paths for item in read_file(path)]


def read_file(path: Path) -> list[Item]:
    """A ``.ndjson``/``.jsonl`` file is one resource a line (blank lines skipped); any other file is one
    JSON document, a Bundle of any type (each entry's resource) or a single resource."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is no reason to refuse a file
    except OSError as e:
        raise LoadError(f"{path}: cannot be read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise LoadError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if path.suffix.lower() in NDJSON_SUFFIXES:
        # Split on newlines only: JSON strings may hold U+2028 and other breaks str.splitlines knows.
        return [Item(f"{path}, line {n}", *_decode(line)) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    doc, unreadable = _decode(text)
    if unreadable:
        raise LoadError(f"{path}: {unreadable.diagnostics}")
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise LoadError(f"{path}: neither a Bundle nor a FHIR resource (no resourceType)")
    if doc["resourceType"] != "Bundle":
        return [Item(str(path), doc)]
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise LoadError(f"{path}: Bundle.entry is not a list")
    return [Item(f"{path}, Bundle.entry[{n}]", entry.get("resource") if isinstance(entry, dict) else None)
            for n, entry in enumerate(entries)]


def _decode(text: str) -> tuple[t.Any, Issue | None]:
    try:
        return exact_json.loads(text), None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}" if "\n" in text.strip() else f"column {e.colno}"
        return None, issue(Msg.LOAD_NOT_JSON, detail=f"{e.msg} at {where}")
    except RecursionError:
        return None, issue(Msg.LOAD_NOT_JSON, detail="nested too deeply")


# --- loading -------------------------------------------------------------------------------------------

def load(items: t.Iterable[Item], ctx: Context) -> Report:
    """Load the items in batches of :data:`BATCH`, each as if loaded in turn; a rejected one is
    reported and the rest go on.

    The indexes are ensured first: the unique one on HPI identifiers is what keeps an identifier on one
    record, and a new database has it only once something has created it.

    :raises StoreUnavailable: the database stopped answering; what was loaded stays, and loading
        the same files again is safe.
    """
    ctx.store.ensure_indexes()
    report = Report()
    pending = iter(items)
    while batch := list(itertools.islice(pending, BATCH)):
        for item, outcome in zip(batch, _load_batch(batch, ctx), strict=True):
            if isinstance(outcome, Change):
                report.counts[outcome] += 1
            else:
                report.rejected.append(Rejection(item.location, outcome))
    return report


Outcome = Change | tuple[Issue, ...]


def _load_batch(batch: list[Item], ctx: Context) -> list[Outcome]:
    """The outcome of each item, the same as :func:`load_item` one after another would give.

    The records the batch names are read together, each item is checked by the service's
    own steps, and the writes go in one bulk write for the creates and one for the updates. An item
    naming an HPI identifier an earlier item of the batch names waits for the bulk writes and is then
    loaded alone, after those before it, as is any write the bulk write did not make (an identifier
    found in use, or a concurrent writer); so every outcome is the one-by-one outcome, reasons and all.
    """
    outcomes: list[Outcome | None] = [None] * len(batch)
    named: set[str] = set()
    alone: list[int] = []  # loaded one by one once the bulk writes are made
    first_looks: dict[int, tuple[str, str | None]] = {}
    for n, item in enumerate(batch):
        try:
            rtype, rid, keys = _first_look(item)
        except RequestRejected as rejected:
            outcomes[n] = tuple(rejected.issues)
            continue
        if keys & named:
            alone.append(n)
        else:
            first_looks[n] = rtype, rid
        named |= keys
    # A record holding an item's id only as a dormant one is another record: the create says so.
    holders = ctx.store.references.get_stored(sorted({f"{rtype}/{rid}" for rtype, rid in first_looks.values() if rid}))
    creates: list[tuple[int, Planned]] = []
    updates: list[tuple[int, Planned]] = []
    for n, (rtype, rid) in first_looks.items():
        doc = batch[n].resource
        holder = holders.get(f"{rtype}/{rid}") if rid else None
        try:
            if rid is None or holder is None:
                creates.append((n, checked_create(rtype, _body(doc), ctx)))
                continue
            # The id is the official identifier's whatever the file says, as on a create.
            planned = checked_update(rtype, rid, _body({**doc, "id": rid}), _if_match(holder.resource),
                                     _as_read(holder), ctx)
        except RequestRejected as rejected:
            outcomes[n] = tuple(rejected.issues)
            continue
        if isinstance(planned, Planned):
            updates.append((n, planned))
        else:
            outcomes[n] = Change.UNCHANGED
    failed_creates, failed_updates = ctx.store.references.write_many(
        [(p.resource, p.search, p.provenance) for _, p in creates],
        [(t.cast(StoredReference, p.previous), p.resource, p.search, p.provenance) for _, p in updates])
    for written, failed, change in ((creates, failed_creates, Change.CREATED), (updates, failed_updates, Change.UPDATED)):
        for k, (n, _) in enumerate(written):
            if k in failed:
                alone.append(n)
            else:
                outcomes[n] = change
    for n in sorted(alone):
        try:
            outcomes[n] = load_item(batch[n], ctx)
        except RequestRejected as rejected:
            outcomes[n] = tuple(rejected.issues)
    return [t.cast(Outcome, o) for o in outcomes]


def _first_look(item: Item) -> tuple[str, str | None, set[str]]:
    """The type of ``item``, the id its official HPI identifier gives it, and every ``Type/value`` of
    its HPI identifiers (any that the store's unique index may find held by another record).

    :raises RequestRejected: not JSON, or not a loadable type.
    """
    doc, rtype = _loadable(item)
    systems = ids.SYSTEM_ALIASES[KINDS[rtype].system]
    identifiers = doc.get("identifier")
    keys = {f"{rtype}/{i['value']}" for i in (identifiers if isinstance(identifiers, list) else [])
            if isinstance(i, dict) and i.get("system") in systems and isinstance(i.get("value"), str)}
    return rtype, official_id(rtype, doc), keys


def _loadable(item: Item) -> tuple[dict[str, t.Any], str]:
    """The resource ``item`` holds and its type.

    :raises RequestRejected: not JSON, or not a loadable type.
    """
    if item.unreadable:
        raise RequestRejected(item.unreadable)
    doc = item.resource
    rtype = doc.get("resourceType") if isinstance(doc, dict) else None
    if not isinstance(rtype, str) or rtype not in KINDS:
        raise RequestRejected(issue(Msg.WRONG_RESOURCE_TYPE, expected=_LOADABLE))
    return doc, rtype


def load_item(item: Item, ctx: Context) -> Change:
    """Create the record ``item`` holds, or update the record with its id on the current version.

    :raises RequestRejected: with every reason: not JSON, not a loadable type, or the service's.
    """
    doc, rtype = _loadable(item)
    rid = official_id(rtype, doc)
    if_match = _current_version(rtype, rid, ctx) if rid else None
    if rid is None or if_match is None:
        create_reference(rtype, _body(doc), ctx)
        return Change.CREATED
    # The id is the official identifier's whatever the file says, as on a create.
    written = update_reference(rtype, rid, _body({**doc, "id": rid}), if_match, ctx)
    return Change.UPDATED if written.changed else Change.UNCHANGED


def _current_version(rtype: str, rid: str, ctx: Context) -> str | None:
    """The If-Match naming the current version of record ``rid``; None if there is none. A record
    holding ``rid`` as a dormant id is another record: the create then says that it holds it."""
    try:
        current = read_reference(rtype, rid, ctx)
    except RequestRejected:  # not found
        return None
    return _if_match(current) if current["id"] == rid else None


def _as_read(stored: StoredReference) -> t.Callable[[], StoredReference]:
    """The batch's one read stands for the update's own read of the record."""
    return lambda: stored


def _if_match(resource: dict[str, t.Any]) -> str:
    return f'W/"{resource["meta"]["versionId"]}"'


def _body(doc: dict[str, t.Any]) -> bytes:
    return exact_json.dumps(doc).encode()
