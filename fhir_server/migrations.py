"""The database's schema, as an ordered list of migrations, and applying the ones a database lacks.

Migration N brings a database from schema version N - 1 to N. Each is idempotent: run again after a
kill part-way through it, it finishes what it started and changes nothing else. :func:`migrate`
applies them under the database's migration lock (:mod:`.store.schema`), so of several ``fhir-server
migrate`` run at once (a deployment's hosts) one applies them and the others wait and find them done;
the version is recorded after each step, so a killed run is resumed from the step it was in.

A production ``serve`` only checks the version (:func:`mismatch`); a development ``serve`` migrates.
A new migration is appended, never inserted or changed: databases record how far along the list they are.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import typing as t
import uuid
from dataclasses import dataclass

from .outcome import StoreUnavailable
from .seed import with_version
from .service import Context
from .service.practitioner_role import business_key, holds_period
from .service.search import identifier_keys, search_fields


class MigrationError(Exception):
    """The database cannot be migrated by this release; the message says why and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: t.Callable[[Context], None]


def _upgrade_roles(ctx: Context) -> None:
    """Roles stored by a version of the server that kept no versions, search fields or identifier
    keys. Before the indexes: the unique one on identifier keys needs them."""
    for role in ctx.store.roles.unupgraded():
        held = ctx.store.roles.new_token(role["id"]) if holds_period(role) else None
        ctx.store.roles.upgrade(role, business_key(role, ctx), held, search_fields(role), identifier_keys(role), ctx.now())


def _create_indexes(ctx: Context) -> None:
    ctx.store.ensure_indexes()


def _complete_reference_data(ctx: Context) -> None:
    """Reference data loaded by a version of the server that kept no versions or search fields."""
    for stored in ctx.store.references.unversioned():
        resource = with_version(stored, ctx)
        ctx.store.references.complete(resource, search_fields(resource))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "upgrade roles stored without versions, search fields or identifier keys", _upgrade_roles),
    Migration(2, "create the indexes", _create_indexes),
    Migration(3, "complete reference data stored without versions or search fields", _complete_reference_data),
)
#: The schema version this release serves: that of its last migration.
SCHEMA_VERSION = MIGRATIONS[-1].version


def mismatch(found: int) -> str | None:
    """Why a server of this release cannot serve a database at schema version ``found``; None if it can."""
    if found < SCHEMA_VERSION:
        return (f"the database schema is at version {found}, this server needs version {SCHEMA_VERSION}: "
                "run `fhir-server migrate` first")
    if found > SCHEMA_VERSION:
        return (f"the database schema is at version {found}, newer than this server's version {SCHEMA_VERSION}: "
                "run the release that migrated it (`fhir-server migrate` never goes back)")
    return None


def migrate(ctx: Context, lease_seconds: float, say: t.Callable[[str], None] = lambda _: None) -> list[Migration]:
    """Apply the migrations the database lacks, in order, under the migration lock; the ones applied.

    Waits while another process holds the lock (it renews it while alive; a dead one's lapses after
    ``lease_seconds``), then starts from the version the database records.

    :raises MigrationError: the database is at a later version than this release knows, or the lock
        was lost (this process stalled past its lease and another took over).
    """
    schema = ctx.store.schema
    owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    waited = False
    while not schema.take_lock(owner, lease_seconds):
        if not waited:
            held = schema.lock_holder()
            say(f"Waiting for the migration lock{f' held by {held[0]}' if held else ''} ...")
            waited = True
        time.sleep(min(1.0, lease_seconds / 4))
    lost = threading.Event()
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease_seconds / 3):
            try:
                if not schema.renew_lock(owner, lease_seconds):
                    lost.set()
                    return
            except StoreUnavailable:  # try again next time; the lease outlasts two misses
                pass

    renewer = threading.Thread(target=renew, name="migration-lock", daemon=True)
    renewer.start()
    applied = []
    try:
        found = schema.version()
        if found > SCHEMA_VERSION:
            raise MigrationError(t.cast(str, mismatch(found)))
        for migration in MIGRATIONS[found:]:
            if lost.is_set():
                raise MigrationError("lost the migration lock (this process stalled past MIGRATION_LEASE_SECONDS): run it again")
            migration.apply(ctx)
            if schema.record(migration.version, migration.name, owner):
                say(f"Applied migration {migration.version}: {migration.name}.")
                applied.append(migration)
        return applied
    finally:
        done.set()
        renewer.join()
        if not lost.is_set():
            schema.release_lock(owner)
