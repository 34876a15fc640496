"""``fhir-server``: run the server, prepare a database, load reference data, manage API keys.

    fhir-server serve                 embedded database unless MONGODB_URI, reference data, gunicorn
    fhir-server init-db               indexes and first-start reference data (for deployments)
    fhir-server load FILE...          create or update Practitioners, Organizations, Locations
    fhir-server client create NAME --scopes "SCOPES" --jwks FILE   registers a client, prints its id and API key
    fhir-server client list | scopes CLIENT_ID "SCOPES" | key CLIENT_ID | revoke CLIENT_ID
    fhir-server token [--scopes "SCOPES"]   prints an access token of the development client
    fhir-server signing-key rotate    the server signs new tokens with a new key
    fhir-server api-key list
    fhir-server api-key limit KEY_ID LIMIT   e.g. 100/minute; "default" for RATE_LIMIT again
    fhir-server api-key revoke KEY_ID
    fhir-server profiles snapshot     regenerate the profiles' snapshots after editing a differential
    fhir-server conformance           run examples/ against a server (--serve: a throwaway one)
    fhir-server bench                 throughput, latency, CPU and memory of each request kind, against a baseline
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import click
from tqdm import tqdm

from . import loader
from .auth import ALL, Access, OAuthError, Tokens, check_jwks
from .auth.assertion import Caller, ClientCredentials, new_client_key, public_jwks, token_request
from .auth.tokens import new_signing_key
from .auth.scopes import parse as parse_scopes
from .config import PROJECT_DIR, STARTED_ENV, Settings
from .conformance import (
    ManifestError,
    ServerDidNotStart,
    Target,
    format_steps,
    format_table,
    load_manifest,
    run,
    throwaway_server,
)
from .embedded_db import EmbeddedDatabase
from .outcome import StoreUnavailable
from .seed import prepare_database
from .snapshot import generate_snapshot
from .service import Context
from .store import Store
from .store.rate_limits import parse_rate_limit
from .definitions import DefinitionError, Definitions, load_definitions

URI_FILE = "mongodb-uri"  # where a running `serve` tells the other commands its embedded database
DEV_KEY_FILE = "dev-api-key"
DEV_CLIENT_FILE = "dev-client.json"  # the development client's id, API key and private key


def _running_serve_uri(settings: Settings) -> str:
    """The embedded database of a `serve` running now, if any (its data folder is locked to it)."""
    uri_file = settings.data_dir / URI_FILE
    if not uri_file.exists():
        return ""
    uri = uri_file.read_text().strip()
    # A busy database may take a while to answer; taken for gone, a second one would be started on its files.
    return uri if EmbeddedDatabase.answers(uri, timeout_ms=5000) else ""


@contextlib.contextmanager
def _context(settings: Settings) -> t.Iterator[Context]:
    """A Context on MONGODB_URI, else on the embedded database of a running `serve`, else on the
    embedded database started for this command alone."""
    uri = settings.mongodb_uri or _running_serve_uri(settings)
    db = None
    if not uri:
        db = EmbeddedDatabase(settings.data_dir / "db")
        db.start()
        uri = db.uri
    store = Store(uri, settings.database, settings.db_timeout_ms)
    try:
        yield Context(store, _definitions(settings), limits=settings.limits, access=Access.system("fhir-server"))
    finally:
        store.close()
        if db:
            db.stop()


def _definitions(settings: Settings) -> Definitions:
    try:
        return load_definitions(settings.profiles_dir)
    except DefinitionError as e:
        raise click.ClickException(f"cannot enforce the profiles: {e}") from None


@click.group(help=__doc__)
def main() -> None:
    pass


def _tokens(ctx: Context, settings: Settings) -> Tokens:
    return Tokens(ctx.store.clients, issuer=settings.token_issuer, lifetime=settings.token_seconds,
                  scope_prefix=settings.scope_prefix)


def _ensure_dev_client(ctx: Context, settings: Settings) -> None:
    """With no client in the database, register one holding every scope, so that the README's curl
    examples work at once; its API key and private key go under DATA_DIR, readable by this user only."""
    data_dir = settings.data_dir
    key_path = data_dir / DEV_KEY_FILE
    if ctx.store.clients.count() == 0:
        private_jwk = new_client_key()
        client = ctx.store.clients.create("development", ALL, public_jwks(private_jwk))
        _, key = ctx.store.api_keys.create("development", client_id=client.client_id)
        ClientCredentials(client.client_id, key, private_jwk).save(data_dir / DEV_CLIENT_FILE)
        key_path.touch(0o600)
        key_path.chmod(0o600)
        key_path.write_text(key + "\n")
        click.echo(f"Registered a development client with every scope ({data_dir / DEV_CLIENT_FILE}).")
    if key_path.exists():
        click.echo("Try it:\n"
                   "  TOKEN=$(.venv/bin/fhir-server token)\n"
                   f"  curl -H \"Authorization: Bearer $TOKEN\" -H \"x-api-key: $(cat {key_path})\" -H 'userid: 99ZZZS' \\\n"
                   f"       http://{settings.host}:{settings.port}/PractitionerRole/R00000029-P")


@main.command()
def serve() -> None:
    """Run the server with gunicorn until Ctrl-C or SIGTERM, then stop it and the database cleanly."""
    settings = Settings()
    definitions = _definitions(settings)  # a profile the server cannot enforce stops it here
    _rate_limit(settings.rate_limit, "RATE_LIMIT")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = None
    uri = settings.mongodb_uri
    if not uri:
        db = EmbeddedDatabase(settings.data_dir / "db")
        click.echo(f"Starting the embedded database (data in {db.storage_path}) ...")
        db.start()
        uri = db.uri
        (settings.data_dir / URI_FILE).write_text(uri)
    try:
        ctx = Context(Store(uri, settings.database, settings.db_timeout_ms), definitions, limits=settings.limits,
                      access=Access.system("fhir-server serve"))
        if prepare_database(ctx):
            click.echo("Loaded the reference data.")
        _tokens(ctx, settings).ensure_signing_key()  # before the workers start, so they share one
        _ensure_dev_client(ctx, settings)
        ctx.store.close()
        sys.exit(_run_gunicorn(settings, uri))
    finally:
        if db:
            click.echo("Stopping the database ...")
            db.stop()
            (settings.data_dir / URI_FILE).unlink(missing_ok=True)


def _run_gunicorn(settings: Settings, uri: str) -> int:
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(settings.workers),
        "--worker-class", "fhir_server.serving.worker.FrontWorker",  # reads requests whole, see serving/
        "--bind", f"{settings.host}:{settings.port}", "--graceful-timeout", "10",
        "--access-logfile", "-", "fhir_server.app:create_app()",
    ]
    # Every worker's CapabilityStatement is dated by this start, so that workers agree (app.py).
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    env = {**os.environ, "MONGODB_URI": uri, STARTED_ENV: started}
    server = subprocess.Popen(command, env=env, start_new_session=True)
    click.echo(f"Serving on http://{settings.host}:{settings.port}  (Ctrl-C stops)")

    def stop(signum: int, frame: t.Any) -> None:
        server.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return server.wait()


@main.command("init-db")
def init_db() -> None:
    """Create indexes and load the reference data into an empty database."""
    with _context(Settings()) as ctx:
        click.echo("Loaded the reference data." if prepare_database(ctx) else "Indexes ensured; data already present.")


@main.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(files: tuple[Path, ...]) -> None:
    """Create or update Practitioners, Organizations and Locations from FILES.

    A .ndjson or .jsonl file holds one resource a line (blank lines are skipped); any other file is one
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
    with _context(Settings()) as ctx, tqdm(items, desc="Loading", unit="record", file=sys.stderr, disable=not on_terminal) as bar:
        try:
            report = loader.load(bar, ctx)
        except StoreUnavailable as e:
            raise click.ClickException(str(e)) from None
    click.echo("\n".join(report.lines()))
    sys.exit(0 if report.ok else 1)


@main.group()
def client() -> None:
    """Register OAuth2 clients (SMART Backend Services), with the API key issued with each."""


def _scopes(text: str) -> frozenset[str]:
    try:
        return parse_scopes(text, Settings().scope_prefix)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--scopes") from None


@client.command("create")
@click.argument("name")
@click.option("--scopes", "scopes_text", required=True,
              help='Space-separated, short or with SCOPE_PREFIX: "PractitionerRole.r PractitionerRole.s PractitionerRole.c"')
@click.option("--jwks", "jwks_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The client's public JWK Set: RS384 or ES384 keys, each with a kid")
@click.option("--rate-limit", help="Its API key's own limit, e.g. 100/minute  [default: RATE_LIMIT]")
def create_client(name: str, scopes_text: str, jwks_file: Path, rate_limit: str | None) -> None:
    """Register a client called NAME; print its client_id and its API key, once."""
    scopes = _scopes(scopes_text)
    try:
        jwks = check_jwks(json.loads(jwks_file.read_text()))
    except (ValueError, UnicodeDecodeError) as e:
        raise click.BadParameter(str(e), param_hint="--jwks") from None
    if rate_limit is not None:
        _rate_limit(rate_limit, "--rate-limit")
    with _context(Settings()) as ctx:
        registered = ctx.store.clients.create(name, scopes, jwks)
        key_id, key = ctx.store.api_keys.create(name, rate_limit, registered.client_id)
    click.echo(f"client_id  {registered.client_id}\nx-api-key  {key}  (key id {key_id})\n"
               "Keep the key now: only its hash is stored.")


@client.command("list")
def list_clients() -> None:
    """Every client: id, name, created, state and scopes."""
    with _context(Settings()) as ctx:
        for c in ctx.store.clients.list():
            state = f"revoked {c['revoked']:%Y-%m-%d %H:%M}" if c["revoked"] else "active"
            click.echo(f"{c['_id']}  {c['name']:<24} created {c['created']:%Y-%m-%d %H:%M}  {state:<22} {' '.join(c['scopes'])}")


@client.command("scopes")
@click.argument("client_id")
@click.argument("scopes_text", metavar="SCOPES")
def set_client_scopes(client_id: str, scopes_text: str) -> None:
    """Replace a client's scopes. Tokens it holds lose what it no longer has within API_KEY_CACHE_SECONDS."""
    scopes = _scopes(scopes_text)
    with _context(Settings()) as ctx:
        if not ctx.store.clients.set_scopes(client_id, scopes):
            raise click.ClickException(f"no active client {client_id}")
    click.echo(f"{client_id} holds {' '.join(sorted(scopes)) or 'no scope'}.")


@client.command("key")
@click.argument("client_id")
@click.option("--rate-limit", help="The key's own limit, e.g. 100/minute  [default: RATE_LIMIT]")
def create_client_key(client_id: str, rate_limit: str | None) -> None:
    """Issue another API key for a client (to replace a leaked one: then revoke that with api-key revoke)."""
    if rate_limit is not None:
        _rate_limit(rate_limit, "--rate-limit")
    with _context(Settings()) as ctx:
        found = ctx.store.clients.get(client_id)
        if found is None or found.revoked:
            raise click.ClickException(f"no active client {client_id}")
        key_id, key = ctx.store.api_keys.create(found.name, rate_limit, client_id)
    click.echo(f"x-api-key  {key}  (key id {key_id})\nKeep the key now: only its hash is stored.")


@client.command("revoke")
@click.argument("client_id")
def revoke_client(client_id: str) -> None:
    """Stop a client and its API keys working (within API_KEY_CACHE_SECONDS): no new token, and its
    tokens are refused with its keys."""
    with _context(Settings()) as ctx:
        if not ctx.store.clients.revoke(client_id):
            raise click.ClickException(f"no active client {client_id}")
        ctx.store.api_keys.revoke_client(client_id)
    click.echo(f"Revoked {client_id}.")


@main.command()
@click.option("--scopes", "scopes_text", help="Short or full scope names  [default: every scope the client holds]")
def token(scopes_text: str | None) -> None:
    """Print an access token of the development client (DATA_DIR/dev-client.json), and nothing else.

    Made as the token endpoint makes it, from a client assertion signed with the client's key:
    TOKEN=$(.venv/bin/fhir-server token)"""
    settings = Settings()
    path = settings.data_dir / DEV_CLIENT_FILE
    if not path.exists():
        raise click.ClickException(f"no {path}: start the server once with `make run`, which registers the development client")
    credentials = ClientCredentials.load(path)
    scopes = _scopes(scopes_text) if scopes_text is not None else ALL
    audience = "fhir-server token"  # this command is both the client and the server: any agreed value will do
    form = token_request(credentials.client_id, credentials.private_jwk, audience,
                         " ".join(settings.scope_prefix + s for s in sorted(scopes)))
    with _context(settings) as ctx:
        try:
            granted = _tokens(ctx, settings).grant(form, audience)
        except OAuthError as e:
            raise click.ClickException(f"{e.error}: {e.description}") from None
    click.echo(granted["access_token"])


@main.group("signing-key")
def signing_key() -> None:
    """The keys the server signs access tokens with."""


@signing_key.command("rotate")
def rotate_signing_key() -> None:
    """Sign new tokens with a new key. Every worker takes it up within 10 s; tokens signed with the old
    key stay valid until they expire."""
    with _context(Settings()) as ctx:
        kid, pem = new_signing_key()
        ctx.store.clients.add_signing_key(kid, pem)
    click.echo(f"Tokens are now signed with key {kid}.")


@main.group("api-key")
def api_key() -> None:
    """List, limit and revoke API keys (stored hashed; issued with clients: see `client`)."""


def _rate_limit(text: str, name: str) -> str:
    try:
        parse_rate_limit(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=name) from None
    return text


@api_key.command("list")
def list_keys() -> None:
    """Every key: id, name, created, state and rate limit."""
    settings = Settings()
    with _context(settings) as ctx:
        for k in ctx.store.api_keys.list():
            state = f"revoked {k['revoked']:%Y-%m-%d %H:%M}" if k["revoked"] else "active"
            limit = k.get("rate_limit") or f"{settings.rate_limit} (RATE_LIMIT)"
            click.echo(f"{k['key_id']}  {k['name']:<24} created {k['created']:%Y-%m-%d %H:%M}  {state:<22} {limit}")


@api_key.command("limit")
@click.argument("key_id")
@click.argument("limit")
def limit_key(key_id: str, limit: str) -> None:
    """Set a key's own rate LIMIT, such as 100/minute; "default" returns it to RATE_LIMIT.

    Workers apply the change within API_KEY_CACHE_SECONDS."""
    own = None if limit == "default" else _rate_limit(limit, "LIMIT")
    with _context(Settings()) as ctx:
        if not ctx.store.api_keys.set_rate_limit(key_id, own):
            raise click.ClickException(f"no active key {key_id}")
    click.echo(f"{key_id} may make {own or 'RATE_LIMIT'}.")


@api_key.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Stop a key working (within API_KEY_CACHE_SECONDS)."""
    with _context(Settings()) as ctx:
        if not ctx.store.api_keys.revoke(key_id):
            raise click.ClickException(f"no active key {key_id}")
    click.echo(f"Revoked {key_id}.")


@main.group()
def profiles() -> None:
    """Maintain the StructureDefinitions of the profiles folder (PROFILES_DIR)."""


@profiles.command("snapshot")
def write_snapshots() -> None:
    """Regenerate every StructureDefinition's snapshot from its differential, then check the folder loads."""
    folder = Settings().profiles_dir
    files = {p: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("StructureDefinition-*.json"))}
    by_url = {sd["url"]: sd for sd in files.values()}
    for path, sd in files.items():
        try:
            elements = generate_snapshot(sd, by_url)
        except ValueError as e:
            raise click.ClickException(f"{path}: {e}") from None
        rest = {k: v for k, v in sd.items() if k not in ("snapshot", "differential")}
        path.write_text(json.dumps({**rest, "snapshot": {"element": elements}, "differential": sd["differential"]},
                                   indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        click.echo(f"{path.name}: {len(elements)} elements")
    _definitions(Settings())
    click.echo("The profiles load.")


@main.command()
@click.option("--base-url", help="The server to check  [default: http://127.0.0.1:8080, or HOST and PORT as `make run` uses them]")
@click.option("--token", help="An access token to send (with --api-key, the key of the token's client); it is not renewed")
@click.option("--api-key", help="The x-api-key to send with --token")
@click.option("--client-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Client credentials (client_id, api_key, private JWK) to ask the server's token endpoint for tokens with  "
                   "[default: DATA_DIR/dev-client.json, which `make run` writes]")
@click.option("--userid", default="99ZZZS", show_default=True, help="The userid header to send.")
@click.option("--examples", "examples_dir", default=PROJECT_DIR / "examples", show_default=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="The folder holding manifest.json.")
@click.option("--serve", is_flag=True, help="Start a throwaway server (embedded database in a temporary DATA_DIR), check it, stop it.")
@click.option("--list", "list_only", is_flag=True, help="Print the steps and what each expects; send nothing.")
def conformance(base_url: str | None, token: str | None, api_key: str | None, client_file: Path | None, userid: str,
                examples_dir: Path, serve: bool, list_only: bool) -> None:
    """Run the examples against a server and print a pass/fail table; exit status 1 if any step fails.

    Every FHIR request carries an access token and the x-api-key of its client: either --token with
    --api-key, or client credentials (--client-file), with which a new token is fetched before the last
    one expires."""
    try:
        manifest = load_manifest(examples_dir)
    except ManifestError as e:
        raise click.ClickException("\n  ".join([f"{examples_dir / 'manifest.json'} cannot be run:", *e.problems])) from None
    if list_only:
        click.echo(format_steps(manifest))
        return
    if bool(token) != bool(api_key):
        raise click.UsageError("--token and --api-key go together: the token must be of the key's client")
    if token and client_file:
        raise click.UsageError("give either --token with --api-key, or --client-file")
    if serve:
        if base_url or token or client_file:
            raise click.UsageError("--serve checks a server of its own: leave out --base-url, --token, --api-key and --client-file")
        try:
            with throwaway_server() as server:
                click.echo(f"Started a throwaway server on {server.base_url} (data in {server.data_dir})")
                caller = Caller.of_client(server.base_url, _client_credentials(server.data_dir / DEV_CLIENT_FILE))
                results = run(manifest, Target(server.base_url, caller, userid))
        except ServerDidNotStart as e:
            raise click.ClickException(str(e)) from None
    else:
        settings = Settings()
        base_url = base_url or f"http://{settings.host}:{settings.port}"
        if token and api_key:
            caller = Caller.fixed(api_key, token)
        else:
            caller = Caller.of_client(base_url, _client_credentials(client_file or settings.data_dir / DEV_CLIENT_FILE))
        results = run(manifest, Target(base_url, caller, userid))
    click.echo(format_table(results))
    sys.exit(0 if all(r.passed for r in results) else 1)


def _client_credentials(path: Path) -> ClientCredentials:
    try:
        return ClientCredentials.load(path)
    except FileNotFoundError:
        raise click.UsageError(f"no {path}: start the server with `make run` first (it writes the development client's "
                               "credentials there), or pass --client-file, or --token with --api-key") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise click.UsageError(f"{path} holds no client credentials (client_id, api_key, key): {e!r}") from None


@main.command()
@click.option("--seconds", envvar="BENCH_SECONDS", default=10.0, show_default=True, help="Measured time of each scenario.")
@click.option("--warmup", envvar="BENCH_WARMUP", default=2.0, show_default=True, help="Unmeasured load before each scenario.")
@click.option("--connections", envvar="BENCH_CONNECTIONS", default=16, show_default=True, help="Concurrent client connections.")
@click.option("--output-dir", envvar="BENCH_OUTPUT_DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Where latest.json and a dated copy go  [default: DATA_DIR/bench]")
def bench(seconds: float, warmup: float, connections: int, output_dir: Path | None) -> None:
    """Benchmark the server against a bare Flask baseline on a throwaway database; print a table, save JSON.

    Starts the embedded database, the server and the baseline app (two gunicorn workers each), then for
    each scenario (baseline routes; create, read, search with _include and update of PractitionerRoles)
    drives load over loopback and reports requests/s, latency percentiles, errors, CPU per request of
    the app and the database, and their peak memory. Exit status 1 if a scenario had errors or could
    not run; missed targets are reported, not failed.
    """
    from . import bench as benchmark  # here: its aiohttp and psutil would slow every other command by 0.2 s

    options = benchmark.Options(seconds=seconds, warmup=warmup, connections=connections)
    started = dt.datetime.now().astimezone()
    # SIGTERM unwinds like Ctrl-C, so the processes the run started are stopped either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        results, about = benchmark.run(options, click.echo)
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; the processes it started are stopped") from None
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    targets = benchmark.check_targets(results, connections)
    click.echo("\n" + benchmark.format_table(results, targets))
    about = {"started": started.isoformat(timespec="seconds"), **about}
    path = benchmark.write_json(benchmark.document(results, targets, about), output_dir or Settings().data_dir / "bench", started)
    click.echo(f"\nSaved {path} (and latest.json beside it).")
    sys.exit(0 if all(r.ok for r in results) else 1)
