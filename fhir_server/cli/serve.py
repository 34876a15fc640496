"""``serve`` and ``init-db``: prepare the database and run the server."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import typing as t

import click

from ..auth import ALL, Access
from ..auth.assertion import ClientCredentials, new_client_key, public_jwks
from ..config import STARTED_ENV, Settings
from ..embedded_db import EmbeddedDatabase
from ..seed import prepare_database
from ..service import Context
from ..store import Store
from . import common
from .common import DEV_CLIENT_FILE, DEV_KEY_FILE, DEV_RATE_LIMIT, URI_FILE


def _ensure_dev_client(ctx: Context, settings: Settings) -> None:
    """With no client in the database, register one holding every scope, so that the README's curl
    examples work at once; its API key and private key go under DATA_DIR, readable by this user only."""
    data_dir = settings.data_dir
    key_path = data_dir / DEV_KEY_FILE
    if ctx.store.clients.count() == 0:
        private_jwk = new_client_key()
        client = ctx.store.clients.create("development", ALL, public_jwks(private_jwk))
        _, key = ctx.store.api_keys.create("development", DEV_RATE_LIMIT, client.client_id)
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


@click.command()
def serve() -> None:
    """Run the server until Ctrl-C or SIGTERM.

    Starts the embedded database unless MONGODB_URI is set, prepares the database, then runs gunicorn
    with WEB_CONCURRENCY workers on HOST:PORT; on Ctrl-C or SIGTERM stops both cleanly."""
    settings = Settings()
    definitions = common.definitions(settings)  # a profile the server cannot enforce stops it here
    common.rate_limit(settings.rate_limit, "RATE_LIMIT")
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
        common.tokens(ctx, settings).ensure_signing_key()  # before the workers start, so they share one
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


@click.command("init-db")
def init_db() -> None:
    """Create indexes; load reference data into an empty database."""
    with common.context(Settings()) as ctx:
        click.echo("Loaded the reference data." if prepare_database(ctx) else "Indexes ensured; data already present.")
