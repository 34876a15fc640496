"""The processes a run measures, each started for the run and stopped however it ends: the embedded
database, the server (``fhir-server serve``, as ``make run`` starts it) and the baseline app under the
same gunicorn options."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from ..config import PROJECT_DIR
from ..embedded_db import EmbeddedDatabase, free_port

START_SECONDS = 90
STOP_SECONDS = 30
HOST = "127.0.0.1"
DATABASE = "fhir_bench"


@dataclass(frozen=True)
class Running:
    base_url: str
    pid: int  # the process whose descendants are its gunicorn workers
    log: Path


@contextlib.contextmanager
def database(folder: Path) -> t.Iterator[EmbeddedDatabase]:
    db = EmbeddedDatabase(folder / "db")
    db.start()
    try:
        yield db
    finally:
        db.stop()


@contextlib.contextmanager
def fhir_server(uri: str, folder: Path, env: t.Mapping[str, str]) -> t.Iterator[Running]:
    """``fhir-server serve`` on ``uri``; it seeds the reference data and writes ``folder/dev-api-key``."""
    port = free_port(HOST)
    full_env = {**os.environ, **env, "MONGODB_URI": uri, "MONGODB_DATABASE": DATABASE, "DATA_DIR": str(folder),
                "HOST": HOST, "PORT": str(port)}
    with _started([sys.executable, "-m", "fhir_server", "serve"], full_env, folder / "server.log",
                  f"http://{HOST}:{port}", "/metadata", signal.SIGINT) as running:  # SIGINT: as Ctrl-C stops it
        yield running


@contextlib.contextmanager
def baseline_server(uri: str, folder: Path, env: t.Mapping[str, str]) -> t.Iterator[Running]:
    """The baseline app with the options ``serve`` gives gunicorn (access log included)."""
    port = free_port(HOST)
    full_env = {**os.environ, **env, "MONGODB_URI": uri, "MONGODB_DATABASE": DATABASE}
    command = [sys.executable, "-m", "gunicorn", "--workers", full_env.get("WEB_CONCURRENCY", "2"),
               "--bind", f"{HOST}:{port}", "--graceful-timeout", "10", "--access-logfile", "-",
               "fhir_server.bench.baseline:create_app()"]
    with _started(command, full_env, folder / "baseline.log", f"http://{HOST}:{port}", "/nothing", signal.SIGTERM) as running:
        yield running


@contextlib.contextmanager
def _started(command: list[str], env: dict[str, str], log_path: Path, base_url: str, ready_path: str,
             stop_signal: signal.Signals) -> t.Iterator[Running]:
    with open(log_path, "wb") as log:
        # A session of its own: Ctrl-C reaches this process alone, which stops the others in order.
        process = subprocess.Popen(command, env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_until_ready(process, base_url + ready_path, log_path)
        yield Running(base_url, process.pid, log_path)
    finally:
        _stop(process, stop_signal)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"{url} did not answer; the output of the process:\n{tail}")


def _stop(process: subprocess.Popen[bytes], stop_signal: signal.Signals) -> None:
    """The stop signal first (a clean shutdown); SIGKILL to the whole tree if it takes too long."""
    if process.poll() is not None:
        return
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    process.send_signal(stop_signal)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        process.wait()
