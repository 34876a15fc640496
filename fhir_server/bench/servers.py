"""The processes a run measures, each started for the run and stopped however it ends: the embedded
database, the server (``fhir-server serve``, as ``make run`` starts it) and the baseline app under the
same gunicorn options."""

from __future__ import annotations

import contextlib
import signal
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .. import processes
from ..embedded_db import EmbeddedDatabase, free_port
from ..serving import GUNICORN_CONFIG, WORKER_CLASS

HOST = "127.0.0.1"
DATABASE = "fhir_bench"


@dataclass(frozen=True)
class Running:
    base_url: str
    pid: int  # the process whose descendants are its gunicorn workers


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
    """``fhir-server serve`` on ``uri``; it seeds the reference data and writes the development client's
    credentials to ``folder/dev-client.json``."""
    port = free_port(HOST)
    full_env = processes.env_for(**env, MONGODB_URI=uri, MONGODB_DATABASE=DATABASE, DATA_DIR=str(folder), HOST=HOST, PORT=str(port),
                                 FHIR_SERVER_ENV="development")  # example data and the development client
    base_url = f"http://{HOST}:{port}"
    with processes.running(processes.SERVE, full_env, folder / "server.log", base_url + "/metadata") as process:
        yield Running(base_url, process.pid)


@contextlib.contextmanager
def baseline_server(uri: str, folder: Path, env: t.Mapping[str, str]) -> t.Iterator[Running]:
    """The baseline app under gunicorn as ``serve`` runs the server: its worker class (keep-alive, the
    request read whole before the app sees it) and its logging (no access log)."""
    port = free_port(HOST)
    metrics_dir = folder / "baseline-metrics"  # its workers' counts, summed at /metrics as the server's are
    metrics_dir.mkdir(mode=0o700)
    full_env = processes.env_for(**env, MONGODB_URI=uri, MONGODB_DATABASE=DATABASE, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    command = [sys.executable, "-m", "gunicorn", "--workers", full_env.get("WEB_CONCURRENCY", "2"),
               "--worker-class", WORKER_CLASS, "--bind", f"{HOST}:{port}", "--graceful-timeout", "10", "--no-control-socket",
               "-c", GUNICORN_CONFIG, "fhir_server.bench.baseline:create_app()"]
    base_url = f"http://{HOST}:{port}"
    with processes.running(command, full_env, folder / "baseline.log", base_url + "/nothing", signal.SIGTERM) as process:
        yield Running(base_url, process.pid)
