"""The embedded default database: a SecantusDB server (MongoDB wire protocol) in a child process.

``--standalone`` by default: in its default replica-set mode SecantusDB slows ~10x after ~10,000
writes. Tests of faults start it with ``test_commands`` (MongoDB's ``configureFailPoint``) and, to see
it as drivers see a replica set (retryable writes, transactions), with ``replica_set``.

Local safety: it listens on loopback with SCRAM authentication (``--auth``) as a ``root`` user whose
random password is made on the first start and kept beside the data (:data:`PASSWORD_FILE`, mode 600),
so :attr:`EmbeddedDatabase.uri` carries credentials; the data folder, log and pid file are the owner's
only. It dies with the process that started it (Linux ``PR_SET_PDEATHSIG``), so a launcher killed
with SIGKILL leaves no database holding the data folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path
from urllib.parse import quote_plus

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

#: Beside the data folder: the password of the database's one user, and the pid of its process.
PASSWORD_FILE = "database-password"
PID_FILE = "database.pid"
#: Beside the data folder, empty: the database's one configuration file. Without it the database reads
#: a ``secantusd.toml`` from the folder it is started in (any folder ``serve`` is run from), which could
#: turn on TLS, test commands or a cache of any size behind the server's back.
CONFIG_FILE = "secantusd.toml"
USER = "root"  # root: the fault tests' configureFailPoint needs it, and this user owns the whole server
PR_SET_PDEATHSIG = 1
_USER_EXISTS = 51003


class DatabaseBusy(RuntimeError):
    """The data folder is held by a database process still running; the message says which and what to do."""


def die_with_parent(death_signal: int = signal.SIGTERM) -> t.Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``death_signal`` when this process dies, however it
    dies (SIGKILL included), so that no child outlives its launcher; None where the kernel has no such
    thing (it is Linux's ``prctl(PR_SET_PDEATHSIG)``)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, death_signal)
        if os.getppid() != parent:  # the launcher died before the line above: nothing would signal us
            os._exit(1)
    return preexec


def _owner_only_file(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _process_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _server_command() -> str:
    beside_python = Path(sys.executable).parent / "secantusd-py"
    return str(beside_python) if beside_python.exists() else (shutil.which("secantusd-py") or "secantusd-py")


class EmbeddedDatabase:
    """Start with :meth:`start`, stop with :meth:`stop`; data lives in ``storage_path`` across restarts."""

    def __init__(self, storage_path: Path, host: str = "127.0.0.1", port: int | None = None, *,
                 test_commands: bool = False, replica_set: bool = False) -> None:
        """``test_commands`` enables ``configureFailPoint`` (mongod's fault injection): tests only;
        ``replica_set`` drops ``--standalone`` (SecantusDB's single-node replica set, as drivers see one)."""
        self.storage_path = storage_path.absolute()  # as the process's command line names it, from any folder
        self.host = host
        self.port = port or free_port(host)
        self.test_commands = test_commands
        self.replica_set = replica_set
        self.process: subprocess.Popen[bytes] | None = None
        self.password = ""

    @property
    def uri(self) -> str:
        # A direct connection either way: the one member is the primary, and the driver still sees a
        # replica set (sessions, retryable writes) when the server says it is one.
        credentials = f"{USER}:{quote_plus(self.password)}@" if self.password else ""
        auth_source = "&authSource=admin" if self.password else ""
        return f"mongodb://{credentials}{self.host}:{self.port}/?directConnection=true{auth_source}"

    @property
    def folder(self) -> Path:
        """Where the log, pid and password files live: beside the data."""
        return self.storage_path.parent

    def start(self, timeout: float = 60.0) -> None:
        """Start it; on a new data folder, first once without ``--auth`` to create its user.

        :raises DatabaseBusy: if an earlier database still holds the data folder.
        """
        self.storage_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.storage_path.chmod(0o700)
        self.check_not_running()
        password_file = self.folder / PASSWORD_FILE
        if not password_file.exists():
            self._create_user(timeout)
        self.password = password_file.read_text().strip()
        self._launch(auth=True)
        self._wait_until_ready(timeout)

    def check_not_running(self) -> None:
        """Clear a pid file left by a database that died; refuse while a database process still holds
        the data folder (the one the pid file names, or one an older launcher left without a pid file)."""
        pid_file = self.folder / PID_FILE
        with contextlib.suppress(OSError, ValueError):
            recorded = int(pid_file.read_text())
            if self._holds_storage(recorded):
                self._refuse(recorded)
        pid_file.unlink(missing_ok=True)
        for entry in Path("/proc").glob("[0-9]*"):
            if self._holds_storage(int(entry.name)):
                self._refuse(int(entry.name))

    def _holds_storage(self, pid: int) -> bool:
        cmdline = _process_cmdline(pid)
        return any("secantusd" in part for part in cmdline[:2]) and str(self.storage_path) in cmdline

    def _refuse(self, pid: int) -> t.NoReturn:
        raise DatabaseBusy(f"a database (pid {pid}) still holds {self.storage_path}: if no server is running "
                           f"on {self.folder}, stop it with `kill {pid}` and start again")

    def _create_user(self, timeout: float) -> None:
        # Written before the user is created, renamed after: a start killed in between finds the same password.
        pending = self.folder / (PASSWORD_FILE + ".new")
        if not pending.exists():
            fd = _owner_only_file(pending)
            os.write(fd, secrets.token_urlsafe(32).encode() + b"\n")
            os.close(fd)
        self.password = ""
        self._launch(auth=False)
        try:
            self._wait_until_ready(timeout)
            client: MongoClient[dict[str, object]] = MongoClient(self.uri, serverSelectionTimeoutMS=int(timeout * 1000))
            try:
                client.admin.command("createUser", USER, pwd=pending.read_text().strip(), roles=["root"])
            except OperationFailure as e:
                if e.code != _USER_EXISTS:
                    raise
            try:
                self._check_untouched(client, pending.read_text().strip())
            finally:
                client.close()
        finally:
            self.stop()
        pending.rename(self.folder / PASSWORD_FILE)

    def _check_untouched(self, client: MongoClient[dict[str, object]], password: str) -> None:
        """Any local user can reach the database while it runs without a password (moments, at its
        first start): refuse one where someone else made a user, took ours, or wrote data meanwhile."""
        users = sorted(str(u["user"]) for u in t.cast(list[dict[str, object]], client.admin.command("usersInfo")["users"]))
        ours: MongoClient[dict[str, object]] = MongoClient(self.uri.replace("://", f"://{USER}:{quote_plus(password)}@", 1)
                                                           + "&authSource=admin", serverSelectionTimeoutMS=5000)
        try:
            ours.admin.command("ping")
            authenticated = True
        except OperationFailure:
            authenticated = False
        finally:
            ours.close()
        if users != [USER] or not authenticated or set(client.list_database_names()) - {"admin", "config", "local"}:
            raise DatabaseBusy(f"while the new database in {self.storage_path} had no password yet, another process "
                               f"changed its users or data: delete {self.storage_path} and {self.folder / PASSWORD_FILE}.new, "
                               "then start again")

    def _launch(self, *, auth: bool) -> None:
        config = self.folder / CONFIG_FILE
        os.close(_owner_only_file(config))
        log = _owner_only_file(self.folder / "database.log")
        try:
            self.process = subprocess.Popen(
                [_server_command(), "--config", str(config), "--host", self.host, "--port", str(self.port),
                 "--storage-path", str(self.storage_path), "--log-level", "WARNING", *(["--auth"] if auth else []),
                 # Every commit reaches the disk before it is answered. The server asks that of every
                 # write (j: true), but SecantusDB drops it from the writes of a bulkWrite command.
                 "--sync-on-commit",
                 *([] if self.replica_set else ["--standalone"]), *(["--enable-test-commands"] if self.test_commands else [])],
                stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops the database last
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - calls only prctl and getppid, safe after fork
            )
        finally:
            os.close(log)
        fd = os.open(self.folder / PID_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, f"{self.process.pid}\n".encode())
        os.close(fd)

    @staticmethod
    def answers(uri: str, timeout_ms: int = 500) -> bool:
        client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers(self.uri):
            if self.process is not None and self.process.poll() is not None:
                (self.folder / PID_FILE).unlink(missing_ok=True)
                raise RuntimeError(f"the database exited with code {self.process.returncode}; "
                                   f"see {self.folder / 'database.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the database did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM lets WiredTiger checkpoint and close; SIGKILL only if that takes too long."""
        if self.process is None:  # never started: the pid file, if any, is another's
            return
        if self.process.poll() is not None:
            (self.folder / PID_FILE).unlink(missing_ok=True)
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        (self.folder / PID_FILE).unlink(missing_ok=True)
