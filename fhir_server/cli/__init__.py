"""Run the FHIR server, and manage its database, reference data, clients and keys.

Settings come from the environment (see the README's Configuration). `fhir-server COMMAND --help`
says more about each command."""

from __future__ import annotations

import click

from ..version import VERSION
from . import access, data, serve, tools

__all__ = ["main"]


@click.group(help=__doc__)
@click.version_option(VERSION, prog_name="fhir-server")
def main() -> None:
    pass


for command in (serve.serve, serve.init_db, data.load, access.client, access.token, access.signing_key,
                access.api_key, tools.profiles, tools.conformance, tools.bench):
    main.add_command(command)
