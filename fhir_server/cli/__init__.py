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

from .. import logs
from ..config import SettingError, Settings
from ..version import VERSION
from . import access, backup, data, database, serve, tools

__all__ = ["main"]


@click.group(help=__doc__)
@click.version_option(VERSION, prog_name="fhir-server")
def main() -> None:
    try:
        settings = Settings()  # a setting no command can run with stops every one here, in one line
    except SettingError as e:
        raise click.UsageError(str(e)) from None
    try:
        logs.configure(settings.log_format, settings.log_level)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="LOG_FORMAT or LOG_LEVEL") from None


for command in (serve.serve, database.migrate, database.check, data.load, backup.export, backup.import_, access.client,
                access.token, access.signing_key, access.api_key, tools.profiles, tools.conformance, tools.bench):
    main.add_command(command)
