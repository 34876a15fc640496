"""``migrate`` and ``check``: bring the database to this release's schema, and verify what it stores."""

from __future__ import annotations

import datetime as dt
import sys

import click

from .. import invariants
from ..config import Settings
from ..migrations import SCHEMA_VERSION
from . import common


@click.command()
def migrate() -> None:
    """Bring the database to this release's schema version.

    Applies the migrations the database lacks (index builds, upgrades of
    records stored by earlier releases), in order, recording the schema
    version after each. Run it before starting production servers of a new
    release: they refuse a database at another version. Safe to run from
    several hosts at once: one applies the migrations while the others wait
    for it, then find nothing to do. Run again after a kill, it resumes where
    that run stopped.
    """
    settings = Settings()
    with common.context(settings) as ctx:
        applied = common.migrate(ctx, settings)
    click.echo(f"Database schema at version {SCHEMA_VERSION} ({applied} migration(s) applied by this run).")


@click.command()
@click.option("--repair", is_flag=True, help="Mend what is safe to mend; report the rest.")
def check(repair: bool) -> None:
    """Verify what the database stores; exit 1 on any problem.

    Prints each problem found, one a line:

    \b
    - a period a business key holds without its role, or a role
      that holds a period without its reservation;
    - the role id counter not above every issued role id;
    - a version of a record missing;
    - an identifier on two records.

    With --repair it re-reserves a role's missing period, drops a period
    nobody holds, raises the counter and re-writes a role's missing current
    version; what cannot be mended safely is printed as not repaired.
    """
    settings = Settings()
    with common.context(settings) as ctx:
        problems = invariants.find_problems(ctx.store, dt.datetime.now(dt.UTC))
        left = 0
        for problem in problems:
            if not repair:
                click.echo(problem.text)
            elif problem.mend is not None and problem.mend():
                click.echo(f"repaired: {problem.text}")
            else:
                click.echo(f"not repaired: {problem.text}")
                left += 1
    if not problems:
        click.echo("No problems found.")
    sys.exit(1 if (left if repair else problems) else 0)
