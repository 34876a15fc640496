"""The processes a reliability run starts and breaks: the embedded database and ``fhir-server serve``
(its launcher, the gunicorn master, the workers). Everything started here is stopped by :func:`lab`,
whatever ends the run (an error, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .. import processes
from ..auth.assertion import Caller, ClientCredentials
from ..embedded_db import EmbeddedDatabase, free_port

#: A request waits this long for the database before its 503: the server's default. Shorter
#: (500 ms) made a connection opened under the 100 parallel creates time out now and then.
DB_TIMEOUT_MS = 2000
#: High enough never to throttle a run; the limits are not what is tested here.
RATE_LIMIT = "100000000/hour"
#: Tokens outlive a full run, so that none is due while the database is down (the token endpoint needs
#: it, and a request without a token would count as lost); renewal itself is the conformance runner's test.
TOKEN_SECONDS = 3600
DATABASE = "fhir"


class Database:
    """The embedded database, killable with SIGKILL and restartable on the same port and storage."""

    def __init__(self, folder: Path) -> None:
        # Test commands (configureFailPoint) for the database-faults scenario; the lab's database is
        # its own, on loopback, and thrown away after the run.
        self._db = EmbeddedDatabase(folder / "db", test_commands=True)

    @property
    def uri(self) -> str:
        return self._db.uri

    def start(self) -> None:
        self._db.start()

    def kill(self) -> None:
        """kill -9: no checkpoint, no goodbye; what was acknowledged must survive it."""
        process = self._db.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the server and any helper
            process.wait()

    def stop(self) -> None:
        self._db.stop()


@dataclass
class Server:
    """A running ``fhir-server serve`` on an external database."""

    launcher: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path

    def caller(self) -> Caller:
        """The development client ``serve`` registered, with every scope."""
        return Caller.of_client(self.base_url, ClientCredentials.load(self.data_dir / "dev-client.json"))

    def worker_pids(self) -> list[int]:
        return sorted(p.pid for p in processes.gunicorn_workers(self.launcher.pid))

    def stop(self) -> None:
        processes.stop(self.launcher)


def start_server(data_dir: Path, uri: str, workers: int) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = processes.env_for(MONGODB_URI=uri, MONGODB_DATABASE=DATABASE, DATA_DIR=str(data_dir), PORT=str(port),
                            HOST="127.0.0.1", WEB_CONCURRENCY=str(workers), RATE_LIMIT=RATE_LIMIT, DB_TIMEOUT_MS=str(DB_TIMEOUT_MS),
                            TOKEN_SECONDS=str(TOKEN_SECONDS), FHIR_SERVER_ENV="development")  # example data, development client
    base_url = f"http://127.0.0.1:{port}"
    server = Server(processes.start(processes.SERVE, env, data_dir / "server.log", base_url + "/metadata"), base_url, data_dir)
    # Serving /metadata needs one worker; wait for all, so that a worker kill has a known set to hit.
    deadline = time.monotonic() + processes.START_SECONDS
    while len(server.worker_pids()) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    return server


@dataclass
class Lab:
    database: Database
    server: Server
    folder: Path
    keep: bool = False  # keep the folder and its logs: a promise broke


def _raise_on_sigterm(signum: int, frame: t.Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through lab(), which stops everything


@contextlib.contextmanager
def lab(workers: int = 3) -> t.Iterator[Lab]:
    """A database and a server in a temporary folder, removed afterwards unless the run fails
    (then its logs are kept and named)."""
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    folder = Path(tempfile.mkdtemp(prefix="fhir-reliability-"))
    database = Database(folder)
    server = None
    running = None
    ok = False
    try:
        database.start()
        server = start_server(folder / "var", database.uri, workers)
        running = Lab(database, server, folder)
        yield running
        ok = not running.keep
    finally:
        if server is not None:
            server.stop()
        database.stop()
        signal.signal(signal.SIGTERM, previous)
        if ok:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"logs kept in {folder}", file=sys.stderr)
