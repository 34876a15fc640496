"""``serve``: run the server; in development, prepare its database first."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import click

from .. import migrations
from ..auth import ALL, Access
from ..auth.assertion import ClientCredentials, new_client_key, public_jwks
from ..config import STARTED_ENV, Settings
from ..embedded_db import PR_SET_PDEATHSIG, EmbeddedDatabase, die_with_parent
from ..metrics import MULTIPROC_DIR_ENV
from ..outcome import StoreUnavailable
from ..seed import load_example_data
from ..service import Context
from ..serving import GUNICORN_CONFIG, WORKER_CLASS
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
    Ctrl-C, SIGTERM, SIGHUP (a closed terminal) or the death of the process
    that started it let requests in hand finish (SHUTDOWN_GRACE_SECONDS),
    then stop the database; its children die with it even on SIGKILL.
    """
    settings = Settings()
    definitions = common.definitions(settings)  # a profile the server cannot enforce stops it here
    common.rate_limit(settings.rate_limit, "RATE_LIMIT")
    common.host_rules(settings)
    if settings.production and not settings.mongodb_uri:
        raise click.UsageError("FHIR_SERVER_ENV=production needs MONGODB_URI: the embedded database is for development")
    _check_metrics(settings)
    os.umask(0o077)  # what this process and its children write under DATA_DIR is the owner's only
    if not settings.production:  # production writes nothing there: DATA_DIR may be read-only, or anyone's
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.data_dir.chmod(0o700)
        for path in settings.data_dir.iterdir():  # files an earlier version left readable by others
            path.chmod(path.stat().st_mode & 0o700)
    db = None
    uri = settings.mongodb_uri
    try:
        _stop_on_signals()
        if not uri:
            db = EmbeddedDatabase(settings.data_dir / "db")
            _say(f"Starting the embedded database (data in {db.storage_path}) ...")
            try:
                db.start()
            except RuntimeError as e:  # DatabaseBusy says what to do; otherwise the database's log says why
                raise click.ClickException(str(e)) from None
            uri = db.uri
            uri_file = settings.data_dir / URI_FILE
            uri_file.touch(0o600)
            uri_file.chmod(0o600)  # it holds the database's password
            uri_file.write_text(uri)
        ctx = Context(Store(uri, settings.database, settings.db_timeout_ms), definitions, limits=settings.limits,
                      access=Access.system("fhir-server serve"))
        if settings.production:
            refusal = migrations.mismatch(ctx.store.schema.version())
            if refusal:
                raise click.ClickException(refusal)
        else:
            common.migrate(ctx, settings)
            if load_example_data(ctx):
                _say("Loaded the IG's example data.")
        common.tokens(ctx, settings).ensure_signing_key()  # before the workers start, so they share one
        if not settings.production:
            _ensure_dev_client(ctx, settings)
        ctx.store.close()
        sys.exit(_run_gunicorn(settings, uri))
    except _Stopped as e:
        _say(f"Stopped by {e} before serving.")
        sys.exit(1)
    except StoreUnavailable as e:
        raise common.unreachable(e) from None
    finally:
        if db:
            _say("Stopping the database ...")
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


class _Stopped(Exception):
    """A stop signal before gunicorn runs: unwinds to the database's stop."""


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP all stop gracefully; so does the death of the process that started
    this one (``make`` killed, its terminal closed), which the kernel turns into a SIGTERM here."""
    def stopped(signum: int, frame: t.Any) -> None:
        raise _Stopped(signal.Signals(signum).name)

    for s in _STOP_SIGNALS:
        signal.signal(s, stopped)
    if sys.platform.startswith("linux"):
        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the line above
            raise _Stopped("the death of its parent")


def _say(text: str) -> None:
    # After SIGHUP the terminal is gone: writing to it fails, which must not keep the database from stopping.
    with contextlib.suppress(OSError):
        click.echo(text)


def _run_gunicorn(settings: Settings, uri: str) -> int:
    grace = settings.shutdown_grace_seconds
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(settings.workers),
        "--worker-class", WORKER_CLASS,  # reads requests whole, see serving/
        "--bind", f"{settings.host}:{settings.port}", "--graceful-timeout", str(grace),
        "--no-control-socket",  # else every instance shares one socket in the home folder
        "-c", GUNICORN_CONFIG,  # logging and metrics across workers
        "fhir_server.app:create_app()",
    ]
    # Every worker's CapabilityStatement is dated by this start, so that workers agree (app.py).
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    metrics_dir = _metrics_dir()
    # The workers are told the mode: given the embedded database's URI, they would take themselves for production.
    env = {**os.environ, "MONGODB_URI": uri, "FHIR_SERVER_ENV": settings.environment_name, STARTED_ENV: started,
           MULTIPROC_DIR_ENV: str(metrics_dir)}
    # A session of its own, so that Ctrl-C and a closed terminal reach this process alone, which stops
    # gunicorn first and the database last; and it dies with this process (SIGTERM: gracefully).
    server = subprocess.Popen(command, env=env, start_new_session=True,
                              preexec_fn=die_with_parent())  # noqa: PLW1509 - calls only prctl and getppid
    stop_sent: list[float] = []

    def stop(signum: int, frame: t.Any) -> None:
        if not stop_sent:
            stop_sent.append(time.monotonic())
            server.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown

    try:
        for s in _STOP_SIGNALS:
            signal.signal(s, stop)
    except _Stopped:  # a signal just before its handler changed
        stop(signal.SIGTERM, None)
    _say(f"Serving on http://{settings.host}:{settings.port}  (Ctrl-C stops)")
    while True:
        try:
            return server.wait(1)
        except subprocess.TimeoutExpired:
            # gunicorn keeps to its graceful timeout; past it and a margin, nothing of it may stay.
            if stop_sent and time.monotonic() > stop_sent[0] + grace + 10:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)

