"""``export`` and ``import``: a backup of every record as NDJSON, and its restore into an empty database."""

from __future__ import annotations

from pathlib import Path

import click

from .. import backup
from ..config import Settings
from ..outcome import StoreUnavailable
from . import common


@click.command("export")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def export(folder: Path) -> None:
    """Write every record, version and Provenance to FOLDER as NDJSON.

    The files are FHIR Bulk Data output, one resource a line.
    FOLDER is created (mode 700) or must be empty. It receives PractitionerRole.ndjson,
    Practitioner.ndjson, Organization.ndjson and Location.ndjson (current versions, confidential
    records whole), PractitionerRole.history.ndjson (every version of every role), Provenance.ndjson
    (who wrote each version) and, last, manifest.json; every file readable by its owner only.
    Credentials (clients, API keys, signing key) are not exported.
    """
    with common.context(Settings()) as ctx:
        try:
            report = backup.export(folder, ctx)
        except (backup.BackupError, StoreUnavailable) as e:
            raise click.ClickException(str(e)) from None
    click.echo("\n".join([f"exported to {folder}", *report.lines()]))


@click.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def import_(folder: Path) -> None:
    """Restore an export from FOLDER into an empty database.

    Every file is checked before anything is written; the ids, versions, lastUpdated times and
    Provenances are kept, and search fields, identifier keys, the reservations of held periods and
    the role id counter are made as the server makes them. A database that holds any record is
    refused, and a restore that fails part way removes what it wrote. Exit status 1 on any refusal.

    Run it before a development server's first `serve` (which loads example data into an empty
    database), or on a production database that holds no record yet.
    """
    settings = Settings()
    with common.context(settings) as ctx:
        try:
            report = backup.restore(folder, ctx)
        except (backup.BackupError, StoreUnavailable) as e:
            raise click.ClickException(str(e)) from None
        common.migrate(ctx, settings)  # records the schema version, so that a production server will serve it
    click.echo("\n".join([f"imported from {folder}", *report.lines()]))
