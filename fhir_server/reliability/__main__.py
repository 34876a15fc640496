"""``python -m fhir_server.reliability [--quick] [--only NAME]...``: exit status 1 if a promise broke."""

from __future__ import annotations

import sys

import click

from .runner import SCENARIOS, chosen, run_scenarios


@click.command(help=__doc__)
@click.option("--quick", is_flag=True, help="Only the scenarios CI runs (all but slow clients and worker kills; a short fuzz).")
@click.option("--only", multiple=True, type=click.Choice(list(SCENARIOS)), help="Run this scenario (repeatable).")
def main(quick: bool, only: tuple[str, ...]) -> None:
    results = run_scenarios(chosen(quick, only), quick)
    sys.exit(0 if all(r.ok for r in results) else 1)


if __name__ == "__main__":
    main()
