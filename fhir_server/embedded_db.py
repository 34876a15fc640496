"""The embedded default database: a SecantusDB server (MongoDB wire protocol) in a child process.

``--standalone`` by default: in its default replica-set mode SecantusDB slows ~10x after ~10,000
writes. Tests of faults start it with ``test_commands`` (MongoDB's ``configureFailPoint``) and, to see
it as drivers see a replica set (retryable writes, transactions), with ``replica_set``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError


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
        self.storage_path = storage_path
        self.host = host
        self.port = port or free_port(host)
        self.test_commands = test_commands
        self.replica_set = replica_set
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        # A direct connection either way: the one member is the primary, and the driver still sees a
        # replica set (sessions, retryable writes) when the server says it is one.
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 60.0) -> None:
        self.storage_path.mkdir(parents=True, exist_ok=True)
        log = open(self.storage_path.parent / "database.log", "ab")
        self.process = subprocess.Popen(
            [_server_command(), "--host", self.host, "--port", str(self.port),
             "--storage-path", str(self.storage_path), "--log-level", "WARNING",
             *([] if self.replica_set else ["--standalone"]), *(["--enable-test-commands"] if self.test_commands else [])],
            stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops the database last
        )
        log.close()
        self._wait_until_ready(timeout)

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
                raise RuntimeError(f"the database exited with code {self.process.returncode}; "
                                   f"see {self.storage_path.parent / 'database.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the database did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM lets WiredTiger checkpoint and close; SIGKILL only if that takes too long."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
