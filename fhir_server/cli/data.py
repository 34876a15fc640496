"""``load``: reference data from files."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from .. import loader
from ..config import Settings
from ..outcome import StoreUnavailable
from . import common


@click.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(files: tuple[Path, ...]) -> None:
    """Load Practitioners, Organizations and Locations from FILES.

    Creates or updates each record. A .ndjson or .jsonl file holds one resource a line (blank lines are skipped); any other file is one
    JSON document: a Bundle of any type, whose entries' resources are loaded, or a single resource.
    A record whose official HPI identifier is new is created; an existing one is updated on its current
    version, or counted unchanged, so loading a file again is safe. Each is checked as over FHIR.

    Prints the counts created, updated, unchanged and rejected, then each rejected record with its file
    and line (or Bundle entry) and every reason.

    Exit status: 0 if nothing was rejected; 1 if a record was rejected or the database failed; 2 if a
    file could not be read or is neither a Bundle nor a resource (then nothing is loaded).
    """
    try:
        items = loader.read_files(files)
    except loader.LoadError as e:
        raise click.BadParameter(str(e), param_hint="FILES") from None
    # The bar is drawn on a terminal only: a log or pipe (or no stderr at all) gets the summary alone.
    on_terminal = sys.stderr is not None and sys.stderr.isatty()
    with common.context(Settings()) as ctx, tqdm(items, desc="Loading", unit="record", file=sys.stderr, disable=not on_terminal) as bar:
        try:
            report = loader.load(bar, ctx)
        except StoreUnavailable as e:
            raise click.ClickException(str(e)) from None
    click.echo("\n".join(report.lines()))
    sys.exit(0 if report.ok else 1)
