"""A throwaway server for one conformance run: ``fhir-server serve`` on a free port, with the embedded
database in a temporary DATA_DIR, stopped with SIGINT as Ctrl-C stops ``make run``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import requests

from ..config import PROJECT_DIR
from ..embedded_db import free_port

START_SECONDS = 90
STOP_SECONDS = 60
# Settings that would point the server elsewhere than the throwaway database and address.
_NOT_INHERITED = ("MONGODB_URI", "DATA_DIR", "PORT", "HOST", "BASE_URL")


class ServerDidNotStart(Exception):
    """The server exited or did not answer ``/metadata`` in time; the message ends with its log."""


@dataclass(frozen=True)
class LocalServer:
    base_url: str
    data_dir: Path


def _log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def throwaway_server() -> t.Iterator[LocalServer]:
    """Start the server, yield where it answers, and stop it (and its database) however the block ends.

    :raises ServerDidNotStart: with the tail of the server's output.
    """
    with tempfile.TemporaryDirectory(prefix="fhir-conformance-") as tmp:
        port, log_path = free_port(), Path(tmp) / "server.log"
        server = LocalServer(f"http://127.0.0.1:{port}", Path(tmp) / "var")
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        env.update(DATA_DIR=str(server.data_dir), PORT=str(port), HOST="127.0.0.1")
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "fhir_server", "serve"], env=env, cwd=PROJECT_DIR,
                                       stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_ready(server, process, log_path)
            yield server
        finally:
            _stop(process)


def _wait_until_ready(server: LocalServer, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if requests.get(server.base_url + "/metadata", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise ServerDidNotStart(f"the server did not start; its output:\n{_log_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends: gunicorn stops, then the database
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
