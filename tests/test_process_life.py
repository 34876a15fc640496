"""The life of `make run` as real processes: however it ends (Ctrl-C, SIGTERM, a closed terminal's
SIGHUP, SIGKILL of `serve` or of `make`), nothing of it keeps running or listening, and the next start
on the same DATA_DIR succeeds; a database left holding DATA_DIR is named with what to do; commands
never start a database of their own; what DATA_DIR holds is the owner's only."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import shlex
import signal
import socket
import stat
import subprocess
import sys
import termios
import threading
import time
import typing as t
from pathlib import Path

import psutil
import pytest
import requests
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from fhir_server.embedded_db import EmbeddedDatabase, free_port

from .support import ROOT, Server, fresh_role

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process life is Linux's prctl")

START_SECONDS = 90
GONE_SECONDS = 45  # SHUTDOWN_GRACE_SECONDS below, the database's own stop, and a margin


class Run:
    """`make run` in a session of its own, as a terminal holds it: make (or a shell running make), then
    serve, its database and gunicorn. ``make`` is the first process of the tree."""

    def __init__(self, data_dir: Path, port: int, *, terminal: bool = False, **env: str) -> None:
        """``terminal``: make's output is a pseudo-terminal that :meth:`close_terminal` hangs up, as
        closing a terminal window does (otherwise a log file)."""
        makefile = data_dir.parent / "Makefile.life"
        makefile.write_text(f"run:\n\t{sys.executable} -m fhir_server serve\n")
        self.port = port
        self.env = {**{k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DATABASE")},
                    "DATA_DIR": str(data_dir), "PORT": str(port), "PYTHONPATH": str(ROOT),
                    "SHUTDOWN_GRACE_SECONDS": "5", **env}
        self.log = data_dir.parent / f"run-{port}.log"
        command = ["make", "--no-print-directory", "-f", str(makefile), "run"]
        self.terminal: int | None = None
        self.hanging_up = threading.Event()
        self.copier: threading.Thread | None = None
        if terminal:
            # An interactive shell on a terminal that make runs in as its foreground job: closing the
            # terminal hangs up the shell, which passes SIGHUP on to its jobs (make alone, the session's
            # leader, would wait for its children forever).
            self.terminal, child_side = pty.openpty()
            self.copier = threading.Thread(target=self._copy_terminal, args=(self.terminal,), daemon=True)
            self.make = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], cwd=ROOT, env=self.env, stdin=child_side,
                                         stdout=child_side, stderr=child_side, start_new_session=True,
                                         preexec_fn=lambda: _as_a_job(controlling_terminal=True))  # noqa: PLW1509
            os.close(child_side)
            os.write(self.terminal, shlex.join(command).encode() + b"\n")
            self.copier.start()
        else:
            with open(self.log, "ab") as log:
                self.make = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True, preexec_fn=_as_a_job)  # noqa: PLW1509
        self.tree: list[psutil.Process] = []

    def _copy_terminal(self, terminal: int) -> None:
        # Read what the terminal shows, so that writers never block on a full one; stop before it is
        # closed, as a thread blocked reading it would keep it open.
        with open(self.log, "ab") as log, contextlib.suppress(OSError):
            while not self.hanging_up.is_set():
                if select.select([terminal], [], [], 0.2)[0]:
                    log.write(os.read(terminal, 65536))
                    log.flush()

    def close_terminal(self) -> None:
        assert self.terminal is not None and self.copier is not None
        self.hanging_up.set()
        self.copier.join(10)
        os.close(self.terminal)
        self.terminal = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.make.poll() is None, self.output()
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/metadata", timeout=2).status_code == 200:
                    self.tree = [psutil.Process(self.make.pid), *psutil.Process(self.make.pid).children(recursive=True)]
                    return
            time.sleep(0.3)
        raise AssertionError(f"not ready in {START_SECONDS} s:\n{self.output()}")

    @property
    def serve(self) -> psutil.Process:
        (serve,) = psutil.Process(self.make.pid).children()
        return serve

    def database_port(self) -> int:
        (db,) = [p for p in self.tree if any("secantusd" in part for part in p.cmdline()[:2])]
        return int(db.cmdline()[db.cmdline().index("--port") + 1])

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_gone(self) -> list[psutil.Process]:
        """What is still alive of the tree after GONE_SECONDS (make's own exit is reaped here)."""
        deadline = time.monotonic() + GONE_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.make.wait(0.2)
            alive = [p for p in self.tree if _alive(p)]
            if not alive:
                return []
            time.sleep(0.2)
        return [p for p in self.tree if _alive(p)]

    def kill(self) -> None:
        for p in self.tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.make.pid, signal.SIGKILL)
        self.make.wait(10)
        if self.terminal is not None:
            self.close_terminal()


def _as_a_job(controlling_terminal: bool = False) -> None:
    """In the child: what a shell gives its jobs. SIGHUP at its default (a runner started with nohup
    would pass on "ignored", and make would survive its terminal); with ``controlling_terminal``, its
    stdin as the session's terminal, whose hangup reaches make."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if controlling_terminal:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running(data_dir: Path, *, terminal: bool = False, **env: str) -> t.Iterator[Run]:
    run = Run(data_dir, free_port(), terminal=terminal, **env)
    try:
        run.wait_ready()
        yield run
    finally:
        run.kill()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DATA_DIR that every test of the module starts on in turn: each start proves the end before it clean."""
    return tmp_path_factory.mktemp("life") / "var"


def _fhir_server(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server", *args], check=False, env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("how", ["SIGINT to the group (Ctrl-C)", "SIGTERM to the group", "SIGHUP to the group",
                                 "terminal closed", "SIGKILL to serve", "SIGKILL to make"])
def test_however_make_run_ends_nothing_stays_running_or_listening_and_the_next_start_succeeds(data_dir: Path, how: str) -> None:
    with running(data_dir, terminal=how == "terminal closed") as run:
        db_port = run.database_port()
        if how == "terminal closed":
            run.close_terminal()
        elif how.startswith("SIGKILL to serve"):
            run.serve.kill()
        elif how.startswith("SIGKILL to make"):
            run.make.kill()
        else:
            os.killpg(run.make.pid, getattr(signal, how.split()[0]))
        assert run.wait_gone() == []
        assert not _listening(run.port) and not _listening(db_port)
        if how == "SIGKILL to serve":  # what it could not clear up; the next start clears it
            assert (data_dir / "database.pid").exists() and (data_dir / "mongodb-uri").exists()
        if not how.startswith("SIGKILL"):
            assert not (data_dir / "mongodb-uri").exists()
            assert "Traceback" not in run.output()


def test_a_create_in_hand_at_sigterm_is_answered_and_the_server_exits_within_its_grace(data_dir: Path) -> None:
    with running(data_dir) as run:
        headers = Server(run.make, run.base_url, data_dir, run.env).headers()
        body = json.dumps(fresh_role()).encode()
        fields = {**headers, "Host": "127.0.0.1", "User-Agent": "process-life/1.0", "Content-Type": "application/fhir+json",
                  "Content-Length": str(len(body)), "Connection": "close"}
        head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        with socket.create_connection(("127.0.0.1", run.port), timeout=30) as slow:
            slow.sendall(f"POST /PractitionerRole HTTP/1.1\r\n{head}\r\n".encode() + body[:10])
            time.sleep(1)  # the worker holds the request, waiting for the rest of its body
            run.serve.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _listening(run.port) and time.monotonic() < deadline:  # it stops accepting at once
                time.sleep(0.1)
            assert not _listening(run.port)
            slow.sendall(body[10:])
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 201 ")
        assert run.wait_gone() == []


def test_a_request_slower_than_the_grace_does_not_keep_the_server_alive(data_dir: Path) -> None:
    with running(data_dir, SHUTDOWN_GRACE_SECONDS="2") as run, \
            socket.create_connection(("127.0.0.1", run.port), timeout=30) as slow:
        slow.sendall(b"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(1)  # the worker holds the request, waiting for a body that never comes
        run.serve.send_signal(signal.SIGTERM)
        assert run.wait_gone() == []


def test_a_database_left_holding_data_dir_is_named_with_what_to_do_and_the_start_after_it_succeeds(data_dir: Path) -> None:
    left = EmbeddedDatabase(data_dir / "db")  # as a crashed launcher would leave it: alive, its pid recorded
    left.start()
    try:
        env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(free_port()), "PYTHONPATH": str(ROOT)}
        env.pop("MONGODB_URI", None)
        for pid_file in ("recorded", "lost"):
            if pid_file == "lost":
                (data_dir / "database.pid").unlink()
            refused = _fhir_server("serve", env=env, cwd=ROOT)
            assert refused.returncode == 1
            assert f"kill {left.process.pid}" in refused.stderr  # type: ignore[union-attr]
            assert "Traceback" not in refused.stderr + refused.stdout
            assert left.process.poll() is None  # type: ignore[union-attr]
    finally:
        left.stop()
    with running(data_dir) as run:
        assert requests.get(run.base_url + "/metadata", timeout=10).status_code == 200


def test_commands_use_the_running_servers_database_from_any_folder_and_never_start_one(data_dir: Path, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "MONGODB_URI"}, "PYTHONPATH": str(ROOT)}
    nowhere = tmp_path / "no-server"
    refused = _fhir_server("api-key", "list", env={**env, "DATA_DIR": str(nowhere)}, cwd=tmp_path)
    assert refused.returncode == 1
    assert f"DATA_DIR={nowhere}" in refused.stderr and "MONGODB_URI" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not nowhere.exists()
    with running(data_dir) as run:
        listed = _fhir_server("api-key", "list", env={**env, "DATA_DIR": str(data_dir)}, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "development" in listed.stdout
        databases = [p for p in psutil.process_iter(["cmdline"])
                     if any("secantusd" in part for part in (p.info["cmdline"] or [])[:2]) and str(data_dir) in p.info["cmdline"]]
        assert [p.pid for p in databases] == [p.pid for p in run.tree if p.pid in {d.pid for d in databases}]


def test_data_dir_is_the_owners_only_and_the_database_wants_its_password_on_loopback(data_dir: Path) -> None:
    with running(data_dir) as run:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for path in [data_dir, *data_dir.rglob("*")]:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        uri = (data_dir / "mongodb-uri").read_text().strip()
        db_port = run.database_port()
        addresses = [t.cast("tuple[str, int]", c.laddr) for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        assert {host for host, port in addresses if port == db_port} == {"127.0.0.1"}
        anonymous: MongoClient[dict[str, t.Any]] = MongoClient(f"mongodb://127.0.0.1:{db_port}/?directConnection=true",
                                                               serverSelectionTimeoutMS=5000)
        try:
            with pytest.raises(OperationFailure):
                anonymous["fhir"]["api_keys"].insert_one({"key": "mine"})
        finally:
            anonymous.close()
        owner: MongoClient[dict[str, t.Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
        try:
            assert owner["fhir"].list_collection_names()
        finally:
            owner.close()
        gunicorn = [p for p in run.tree if "gunicorn" in p.cmdline()]
        assert gunicorn and all("--no-control-socket" in p.cmdline() for p in gunicorn)
