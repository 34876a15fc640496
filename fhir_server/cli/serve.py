"""``serve``: run the server; in development, prepare its database first."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import click

from .. import migrations
from ..auth import ALL, Access
from ..auth.assertion import ClientCredentials, new_client_key, public_jwks
from ..config import STARTED_ENV, Settings
from ..embedded_db import EmbeddedDatabase
from ..metrics import MULTIPROC_DIR_ENV
from ..seed import load_example_data
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
    """Run the server until Ctrl-C, SIGTERM or SIGHUP.

    In development (FHIR_SERVER_ENV=development, the default without
    MONGODB_URI) it starts the embedded database unless MONGODB_URI is set,
    migrates it, loads the IG's example data into an empty one, and registers
    a development client whose credentials it writes under DATA_DIR.

    In production (FHIR_SERVER_ENV=production, the default with MONGODB_URI)
    it does none of that: it serves a database already migrated by
    `fhir-server migrate`, and refuses any other.

    Either way it runs gunicorn with WEB_CONCURRENCY workers on HOST:PORT.
    """
    settings = Settings()
    definitions = common.definitions(settings)  # a profile the server cannot enforce stops it here
    common.rate_limit(settings.rate_limit, "RATE_LIMIT")
    common.host_rules(settings)
    if settings.production and not settings.mongodb_uri:
        raise click.UsageError("FHIR_SERVER_ENV=production needs MONGODB_URI: the embedded database is for development")
    _check_metrics(settings)
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
        if settings.production:
            refusal = migrations.mismatch(ctx.store.schema.version())
            if refusal:
                raise click.ClickException(refusal)
        else:
            common.migrate(ctx, settings)
            if load_example_data(ctx):
                click.echo("Loaded the IG's example data.")
        common.tokens(ctx, settings).ensure_signing_key()  # before the workers start, so they share one
        if not settings.production:
            _ensure_dev_client(ctx, settings)
        ctx.store.close()
        sys.exit(_run_gunicorn(settings, uri))
    finally:
        if db:
            click.echo("Stopping the database ...")
            db.stop()
            (settings.data_dir / URI_FILE).unlink(missing_ok=True)


def _check_metrics(settings: Settings) -> None:
    if settings.metrics not in ("public", "token", "off"):
        raise click.BadParameter(f"{settings.metrics!r} is not public, token or off", param_hint="METRICS")
    if settings.metrics == "token" and not settings.metrics_token:
        click.echo("METRICS=token and no METRICS_TOKEN: /metrics refuses every scraper (set METRICS_TOKEN, or METRICS=public|off).")


def _metrics_dir() -> Path:
    """The folder where this run's workers keep their metrics (prometheus_client's multi-process
    mode): PROMETHEUS_MULTIPROC_DIR emptied, else a new private one (mode 700). Never shared with an
    earlier run, whose counts would be added to this one's."""
    given = os.environ.get(MULTIPROC_DIR_ENV)
    if not given:
        made = Path(tempfile.mkdtemp(prefix="fhir-server-metrics-"))
        atexit.register(shutil.rmtree, made, ignore_errors=True)  # serve ends by sys.exit, after gunicorn
        return made
    folder = Path(given)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    return folder


def _run_gunicorn(settings: Settings, uri: str) -> int:
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(settings.workers),
        "--worker-class", "fhir_server.serving.worker.FrontWorker",  # reads requests whole, see serving/
        "--bind", f"{settings.host}:{settings.port}", "--graceful-timeout", "10",
        "-c", "python:fhir_server.serving.gunicorn_config",  # logging and metrics across workers
        "fhir_server.app:create_app()",
    ]
    # Every worker's CapabilityStatement is dated by this start, so that workers agree (app.py).
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    metrics_dir = _metrics_dir()
    # The workers are told the mode: given the embedded database's URI, they would take themselves for production.
    env = {**os.environ, "MONGODB_URI": uri, "FHIR_SERVER_ENV": settings.environment_name, STARTED_ENV: started,
           MULTIPROC_DIR_ENV: str(metrics_dir)}
    server = subprocess.Popen(command, env=env, start_new_session=True)
    click.echo(f"Serving on http://{settings.host}:{settings.port}  (Ctrl-C stops)")

    def stop(signum: int, frame: t.Any) -> None:
        server.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return server.wait()
