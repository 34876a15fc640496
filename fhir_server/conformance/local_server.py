"""A throwaway server for one conformance run: ``fhir-server serve`` on a free port, with the embedded
database in a temporary DATA_DIR, stopped with SIGINT as Ctrl-C stops ``make run``."""

from __future__ import annotations

import contextlib
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .. import processes
from ..embedded_db import free_port


class ServerDidNotStart(Exception):
    """The server exited or did not answer ``/metadata`` in time; the message ends with its log."""


@dataclass(frozen=True)
class LocalServer:
    base_url: str
    data_dir: Path


@contextlib.contextmanager
def throwaway_server() -> t.Iterator[LocalServer]:
    """Start the server, yield where it answers, and stop it (and its database) however the block ends.

    :raises ServerDidNotStart: with the tail of the server's output.
    """
    with tempfile.TemporaryDirectory(prefix="fhir-conformance-") as tmp:
        port = free_port()
        server = LocalServer(f"http://127.0.0.1:{port}", Path(tmp) / "var")
        env = processes.env_for(DATA_DIR=str(server.data_dir), PORT=str(port), HOST="127.0.0.1", FHIR_SERVER_ENV="development")
        try:
            with processes.running(processes.SERVE, env, Path(tmp) / "server.log", server.base_url + "/metadata"):
                yield server
        except processes.DidNotStart as e:
            raise ServerDidNotStart(str(e)) from None
