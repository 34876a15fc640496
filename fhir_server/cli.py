"""``fhir-server``: run the server, prepare a database, manage API keys.

    fhir-server serve                 embedded database unless MONGODB_URI, reference data, gunicorn
    fhir-server init-db               indexes and first-start reference data (for deployments)
    fhir-server api-key create NAME   prints a new key once
    fhir-server api-key list
    fhir-server api-key revoke KEY_ID
    fhir-server conformance           run examples/ against a server (--serve: a throwaway one)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import click

from .config import PROJECT_DIR, Settings
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
from .seed import prepare_database
from .service import Context
from .store import Store
from .terminology import load_value_sets

URI_FILE = "mongodb-uri"  # where a running `serve` tells the other commands its embedded database
DEV_KEY_FILE = "dev-api-key"


def _running_serve_uri(settings: Settings) -> str:
    """The embedded database of a `serve` running now, if any (its data folder is locked to it)."""
    uri_file = settings.data_dir / URI_FILE
    if not uri_file.exists():
        return ""
    uri = uri_file.read_text().strip()
    return uri if EmbeddedDatabase.answers(uri) else ""


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
        yield Context(store, load_value_sets(settings.profiles_dir))
    finally:
        store.close()
        if db:
            db.stop()


@click.group(help=__doc__)
def main() -> None:
    pass


def _ensure_dev_key(ctx: Context, data_dir: Path) -> None:
    """With no key in the database, make one so that the README's curl examples work at once."""
    path = data_dir / DEV_KEY_FILE
    if ctx.store.api_keys.count() == 0:
        _, key = ctx.store.api_keys.create("development")
        path.write_text(key + "\n")
        path.chmod(0o600)
        click.echo(f"Created a development API key (also in {path}):\n  {key}")
    elif path.exists():
        click.echo(f"Development API key: {path}")


@main.command()
def serve() -> None:
    """Run the server with gunicorn until Ctrl-C or SIGTERM, then stop it and the database cleanly."""
    settings = Settings()
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
        ctx = Context(Store(uri, settings.database, settings.db_timeout_ms), load_value_sets(settings.profiles_dir))
        if prepare_database(ctx):
            click.echo("Loaded the reference data.")
        _ensure_dev_key(ctx, settings.data_dir)
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
        "--bind", f"{settings.host}:{settings.port}", "--graceful-timeout", "10",
        "--access-logfile", "-", "fhir_server.app:create_app()",
    ]
    server = subprocess.Popen(command, env={**os.environ, "MONGODB_URI": uri}, start_new_session=True)
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


@main.group("api-key")
def api_key() -> None:
    """Create, list and revoke API keys (stored hashed)."""


@api_key.command("create")
@click.argument("name")
def create_key(name: str) -> None:
    with _context(Settings()) as ctx:
        key_id, key = ctx.store.api_keys.create(name)
    click.echo(f"{key_id}  {key}\nKeep the key now: only its hash is stored.")


@api_key.command("list")
def list_keys() -> None:
    with _context(Settings()) as ctx:
        for k in ctx.store.api_keys.list():
            state = f"revoked {k['revoked']:%Y-%m-%d %H:%M}" if k["revoked"] else "active"
            click.echo(f"{k['key_id']}  {k['name']:<24} created {k['created']:%Y-%m-%d %H:%M}  {state}")


@api_key.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    with _context(Settings()) as ctx:
        if not ctx.store.api_keys.revoke(key_id):
            raise click.ClickException(f"no active key {key_id}")
    click.echo(f"Revoked {key_id}.")


@main.command()
@click.option("--base-url", help="The server to check  [default: http://127.0.0.1:8080, or HOST and PORT as `make run` uses them]")
@click.option("--api-key", help="The x-api-key to send  [default: the one `make run` wrote to DATA_DIR/dev-api-key]")
@click.option("--userid", default="99ZZZS", show_default=True, help="The userid header to send.")
@click.option("--examples", "examples_dir", default=PROJECT_DIR / "examples", show_default=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="The folder holding manifest.json.")
@click.option("--serve", is_flag=True, help="Start a throwaway server (embedded database in a temporary DATA_DIR), check it, stop it.")
@click.option("--list", "list_only", is_flag=True, help="Print the steps and what each expects; send nothing.")
def conformance(base_url: str | None, api_key: str | None, userid: str, examples_dir: Path, serve: bool, list_only: bool) -> None:
    """Run the examples against a server and print a pass/fail table; exit status 1 if any step fails."""
    try:
        manifest = load_manifest(examples_dir)
    except ManifestError as e:
        raise click.ClickException("\n  ".join([f"{examples_dir / 'manifest.json'} cannot be run:", *e.problems])) from None
    if list_only:
        click.echo(format_steps(manifest))
        return
    if serve:
        if base_url or api_key:
            raise click.UsageError("--serve checks a server of its own: leave out --base-url and --api-key")
        try:
            with throwaway_server() as server:
                click.echo(f"Started a throwaway server on {server.base_url} (data in {server.data_dir})")
                results = run(manifest, Target(server.base_url, _dev_key(server.data_dir), userid))
        except ServerDidNotStart as e:
            raise click.ClickException(str(e)) from None
    else:
        settings = Settings()
        target = Target(base_url or f"http://{settings.host}:{settings.port}", api_key or _dev_key(settings.data_dir), userid)
        results = run(manifest, target)
    click.echo(format_table(results))
    sys.exit(0 if all(r.passed for r in results) else 1)


def _dev_key(data_dir: Path) -> str:
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        raise click.UsageError(f"no --api-key given and no {path}: start the server with `make run` first, or pass --api-key")
    return path.read_text().strip()
