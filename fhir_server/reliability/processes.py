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

import requests

from ..config import PROJECT_DIR
from ..embedded_db import EmbeddedDatabase, free_port

#: A request waits this long for the database before its 503: the server's default. Shorter
#: (500 ms) made a connection opened under the 100 parallel creates time out now and then.
DB_TIMEOUT_MS = 2000
#: High enough never to throttle a run; the limits are not what is tested here.
RATE_LIMIT = "100000000/hour"
DATABASE = "fhir"


class Database:
    """The embedded database, killable with SIGKILL and restartable on the same port and storage."""

    def __init__(self, folder: Path) -> None:
        self._db = EmbeddedDatabase(folder / "db")

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


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, read from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Server:
    """A running ``fhir-server serve`` on an external database."""

    launcher: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path

    @property
    def api_key(self) -> str:
        return (self.data_dir / "dev-api-key").read_text().strip()

    def master_pid(self) -> int | None:
        """The gunicorn master: the launcher's child."""
        children = _children(self.launcher.pid)
        return children[0] if children else None

    def worker_pids(self) -> list[int]:
        master = self.master_pid()
        return sorted(_children(master)) if master else []

    def stop(self) -> None:
        """Ctrl-C's way first (the launcher stops gunicorn gracefully), SIGKILL to what is left."""
        master = self.master_pid()
        if self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGINT)
            try:
                self.launcher.wait(30)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()
        if master is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(master, signal.SIGKILL)  # gunicorn runs in a session of its own


def start_server(data_dir: Path, uri: str, workers: int) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DATABASE": DATABASE, "DATA_DIR": str(data_dir),
           "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": str(workers), "RATE_LIMIT": RATE_LIMIT,
           "DB_TIMEOUT_MS": str(DB_TIMEOUT_MS)}
    log = open(data_dir / "server.log", "ab")
    launcher = subprocess.Popen([sys.executable, "-m", "fhir_server", "serve"], env=env, cwd=PROJECT_DIR,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    server = Server(launcher, f"http://127.0.0.1:{port}", data_dir)
    deadline = time.monotonic() + 90
    while not _answers(server.base_url):
        if launcher.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server did not start; see {data_dir / 'server.log'}")
        time.sleep(0.2)
    # Serving /metadata needs one worker; wait for all, so that a worker kill has a known set to hit.
    while len(server.worker_pids()) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    return server


def _answers(base_url: str) -> bool:
    try:
        return requests.get(base_url + "/metadata", timeout=2).status_code == 200
    except requests.RequestException:
        return False


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
