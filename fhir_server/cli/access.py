"""Who may call the server: clients, their API keys and tokens, and the server's signing keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..auth import ALL, OAuthError, check_jwks
from ..auth.assertion import ClientCredentials, token_request
from ..auth.tokens import new_signing_key
from ..config import Settings
from . import common
from .common import DEV_CLIENT_FILE


@click.group()
def client() -> None:
    """Register and manage OAuth2 clients and their API keys.

    Clients authenticate as SMART Backend Services do (a signed assertion for a token); each is issued
    an API key with it, to send as x-api-key."""


@client.command("create")
@click.argument("name")
@click.option("--scopes", "scopes_text", required=True,
              help='Space-separated, short or with SCOPE_PREFIX, such as "PractitionerRole.r PractitionerRole.s".')
@click.option("--jwks", "jwks_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The client's public JWK Set: RS384 or ES384 keys, each with a kid.")
@click.option("--rate-limit", show_default="RATE_LIMIT", help="Its API key's own limit, such as 100/minute.")
def create_client(name: str, scopes_text: str, jwks_file: Path, rate_limit: str | None) -> None:
    """Register client NAME; print its client_id and API key once.

    Only the key's hash is stored: keep the key when it is printed.

    \b
    For example:
      fhir-server client create billing --jwks billing-jwks.json \\
        --scopes "PractitionerRole.r PractitionerRole.s" \\
        --rate-limit 100/minute
    """
    scopes = common.scopes(scopes_text)
    try:
        jwks = check_jwks(json.loads(jwks_file.read_text()))
    except (ValueError, UnicodeDecodeError) as e:
        raise click.BadParameter(str(e), param_hint="--jwks") from None
    if rate_limit is not None:
        common.rate_limit(rate_limit, "--rate-limit")
    with common.context(Settings()) as ctx:
        registered = ctx.store.clients.create(name, scopes, jwks)
        key_id, key = ctx.store.api_keys.create(name, rate_limit, registered.client_id)
    click.echo(f"client_id  {registered.client_id}\nx-api-key  {key}  (key id {key_id})\n"
               "Keep the key now: only its hash is stored.")


@client.command("list")
def list_clients() -> None:
    """Every client: id, name, created, state and scopes."""
    with common.context(Settings()) as ctx:
        for c in ctx.store.clients.list():
            state = f"revoked {c['revoked']:%Y-%m-%d %H:%M}" if c["revoked"] else "active"
            click.echo(f"{c['_id']}  {c['name']:<24} created {c['created']:%Y-%m-%d %H:%M}  {state:<22} {' '.join(c['scopes'])}")


@client.command("scopes")
@click.argument("client_id")
@click.argument("scopes_text", metavar="SCOPES")
def set_client_scopes(client_id: str, scopes_text: str) -> None:
    """Replace a client's SCOPES.

    Tokens it holds lose what it no longer has within API_KEY_CACHE_SECONDS."""
    scopes = common.scopes(scopes_text)
    with common.context(Settings()) as ctx:
        if not ctx.store.clients.set_scopes(client_id, scopes):
            raise click.ClickException(f"no active client {client_id}")
    click.echo(f"{client_id} holds {' '.join(sorted(scopes)) or 'no scope'}.")


@client.command("key")
@click.argument("client_id")
@click.option("--rate-limit", show_default="RATE_LIMIT", help="The key's own limit, such as 100/minute.")
def create_client_key(client_id: str, rate_limit: str | None) -> None:
    """Issue another API key for a client.

    To replace a leaked key: issue a new one, then revoke the old one with `fhir-server api-key revoke`."""
    if rate_limit is not None:
        common.rate_limit(rate_limit, "--rate-limit")
    with common.context(Settings()) as ctx:
        found = ctx.store.clients.get(client_id)
        if found is None or found.revoked:
            raise click.ClickException(f"no active client {client_id}")
        key_id, key = ctx.store.api_keys.create(found.name, rate_limit, client_id)
    click.echo(f"x-api-key  {key}  (key id {key_id})\nKeep the key now: only its hash is stored.")


@client.command("revoke")
@click.argument("client_id")
def revoke_client(client_id: str) -> None:
    """Revoke a client and its API keys.

    Within API_KEY_CACHE_SECONDS it gets no new token, and its tokens are refused with its keys."""
    with common.context(Settings()) as ctx:
        if not ctx.store.clients.revoke(client_id):
            raise click.ClickException(f"no active client {client_id}")
        ctx.store.api_keys.revoke_client(client_id)
    click.echo(f"Revoked {client_id}.")


@click.command()
@click.option("--scopes", "scopes_text", show_default="every scope the client holds", help="Short or full scope names.")
def token(scopes_text: str | None) -> None:
    """Print an access token of the development client.

    It prints the token alone, for a shell to capture. The client is the one `make run` registers
    (DATA_DIR/dev-client.json); the token is made as the token endpoint makes it, from a client
    assertion signed with the client's key.

    \b
    For example:
      TOKEN=$(.venv/bin/fhir-server token)
    """
    settings = Settings()
    path = settings.data_dir / DEV_CLIENT_FILE
    if not path.exists():
        raise click.ClickException(f"no {path}: start the server once with `make run`, which registers the development client")
    credentials = ClientCredentials.load(path)
    scopes = common.scopes(scopes_text) if scopes_text is not None else ALL
    audience = "fhir-server token"  # this command is both the client and the server: any agreed value will do
    form = token_request(credentials.client_id, credentials.private_jwk, audience,
                         " ".join(settings.scope_prefix + s for s in sorted(scopes)))
    with common.context(settings) as ctx:
        try:
            granted = common.tokens(ctx, settings).grant(form, audience)
        except OAuthError as e:
            raise click.ClickException(f"{e.error}: {e.description}") from None
    click.echo(granted["access_token"])


@click.group("signing-key")
def signing_key() -> None:
    """The keys the server signs access tokens with."""


@signing_key.command("rotate")
def rotate_signing_key() -> None:
    """Sign new tokens with a new key.

    Every worker takes it up within 10 s; tokens signed with the old key stay valid until they expire."""
    with common.context(Settings()) as ctx:
        kid, pem = new_signing_key()
        ctx.store.clients.add_signing_key(kid, pem)
    click.echo(f"Tokens are now signed with key {kid}.")


@click.group("api-key")
def api_key() -> None:
    """List, limit and revoke API keys.

    Keys are stored hashed, and issued with clients: see `fhir-server client`."""


@api_key.command("list")
def list_keys() -> None:
    """Every key: id, name, created, state and rate limit."""
    settings = Settings()
    with common.context(settings) as ctx:
        for k in ctx.store.api_keys.list():
            state = f"revoked {k['revoked']:%Y-%m-%d %H:%M}" if k["revoked"] else "active"
            limit = k.get("rate_limit") or f"{settings.rate_limit} (RATE_LIMIT)"
            click.echo(f"{k['key_id']}  {k['name']:<24} created {k['created']:%Y-%m-%d %H:%M}  {state:<22} {limit}")


@api_key.command("limit")
@click.argument("key_id")
@click.argument("limit")
def limit_key(key_id: str, limit: str) -> None:
    """Set a key's own rate LIMIT, such as 100/minute.

    "default" returns the key to RATE_LIMIT. Workers apply the change within API_KEY_CACHE_SECONDS."""
    own = None if limit == "default" else common.rate_limit(limit, "LIMIT")
    with common.context(Settings()) as ctx:
        if not ctx.store.api_keys.set_rate_limit(key_id, own):
            raise click.ClickException(f"no active key {key_id}")
    click.echo(f"{key_id} may make {own or 'RATE_LIMIT'}.")


@api_key.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Stop a key working (within API_KEY_CACHE_SECONDS)."""
    with common.context(Settings()) as ctx:
        if not ctx.store.api_keys.revoke(key_id):
            raise click.ClickException(f"no active key {key_id}")
    click.echo(f"Revoked {key_id}.")
