"""Run the FHIR server; manage its database, reference data, clients and keys.

Settings come from the environment (see the README's Configuration). Each command says more with
`fhir-server COMMAND --help`.

\b
For example:
  fhir-server serve               run the server (as `make run` does)
  fhir-server load FILE...        create or update reference data
  fhir-server client create NAME  register a client, issue its API key
  TOKEN=$(fhir-server token)      a token of the development client
  fhir-server conformance         check a running server
"""

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
