"""What the commands share: finding the database, loading the profiles, parsing scopes and limits."""

from __future__ import annotations

import contextlib
import typing as t
from pathlib import Path

import click

from ..auth import Access, Tokens
from ..auth.assertion import ClientCredentials
from ..auth.scopes import parse as parse_scopes
from ..config import Settings
from ..definitions import DefinitionError, Definitions, load_definitions
from ..embedded_db import EmbeddedDatabase
from ..http import hosts
from ..migrations import MigrationError
from ..migrations import migrate as apply_migrations
from ..outcome import StoreUnavailable
from ..service import Context
from ..store import Store
from ..store.rate_limits import parse_rate_limit

URI_FILE = "mongodb-uri"  # where a running `serve` tells the other commands its embedded database
DEV_KEY_FILE = "dev-api-key"
DEV_CLIENT_FILE = "dev-client.json"  # the development client's id, API key and private key
#: The development key's own limit, far above what a developer (or repeated conformance runs) can send,
#: so that RATE_LIMIT, which still applies to every other key, is never spent by trying the server out.
DEV_RATE_LIMIT = "100000000/hour"


def running_serve_uri(settings: Settings) -> str:
    """The embedded database of a `serve` running now, if any (its data folder is locked to it)."""
    try:
        uri = (settings.data_dir / URI_FILE).read_text().strip()
    except OSError:  # none, or another user's
        return ""
    # A busy database may take a while to answer; taken for gone, a second one would be started on its files.
    return uri if EmbeddedDatabase.answers(uri, timeout_ms=5000) else ""


@contextlib.contextmanager
def context(settings: Settings) -> t.Iterator[Context]:
    """A Context on MONGODB_URI, else on the embedded database of the `serve` running on DATA_DIR.

    Never a database of its own: one started on another DATA_DIR than the server's would hold keys and
    clients the server never sees.
    """
    uri = settings.mongodb_uri or running_serve_uri(settings)
    if not uri:
        raise click.ClickException(f"no server is running with DATA_DIR={settings.data_dir}: start it with "
                                   "`make run`, or set MONGODB_URI")
    store = Store(uri, settings.database, settings.db_timeout_ms)
    try:
        yield Context(store, definitions(settings), limits=settings.limits, access=Access.system("fhir-server"))
    except StoreUnavailable as e:
        raise unreachable(e) from None
    finally:
        store.close()


def unreachable(e: StoreUnavailable) -> click.ClickException:
    """A command's one line when the database fails it (the URI is not repeated: it may hold a password)."""
    return click.ClickException(f"the database did not answer in time ({e}): check MONGODB_URI, DB_TIMEOUT_MS "
                                "and that the database is running")


def migrate(ctx: Context, settings: Settings) -> int:
    """Bring the database to this release's schema (:data:`SCHEMA_VERSION`), saying each migration
    applied; how many were."""
    try:
        return len(apply_migrations(ctx, settings.migration_lease_seconds, click.echo))
    except MigrationError as e:
        raise click.ClickException(str(e)) from None


def definitions(settings: Settings) -> Definitions:
    try:
        return load_definitions(settings.profiles_dir)
    except DefinitionError as e:
        raise click.ClickException(f"cannot enforce the profiles: {e}") from None


def tokens(ctx: Context, settings: Settings) -> Tokens:
    return Tokens(ctx.store.clients, issuer=settings.token_issuer, lifetime=settings.token_seconds,
                  scope_prefix=settings.scope_prefix)


def scopes(text: str) -> frozenset[str]:
    try:
        return parse_scopes(text, Settings().scope_prefix)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--scopes") from None


def rate_limit(text: str, name: str) -> str:
    try:
        parse_rate_limit(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=name) from None
    return text


def host_rules(settings: Settings) -> None:
    """Stop with the reason if BASE_URL, ALLOWED_HOSTS or TRUSTED_PROXIES cannot be read, or if a
    production server was given neither its public address nor its host names."""
    try:
        hosts.rules(settings)
        if settings.production:
            hosts.require_public_origin(settings)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def client_credentials(path: Path) -> ClientCredentials:
    try:
        return ClientCredentials.load(path)
    except FileNotFoundError:
        raise click.UsageError(f"no {path}: start the server with `make run` first (it writes the development client's "
                               "credentials there), or pass --client-file, or --token with --api-key") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise click.UsageError(f"{path} holds no client credentials (client_id, api_key, key): {e!r}") from None
