"""The local servers a run starts for itself (conformance, ``make bench``, ``make reliability``): each
started in a session of its own, waited for until it answers, and stopped however the run ends,
gracefully first and with SIGKILL to whatever is left."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import psutil
import requests

from .config import PROJECT_DIR

START_SECONDS = 90
STOP_SECONDS = 30
SERVE = [sys.executable, "-m", "fhir_server", "serve"]
# Settings that would point a server elsewhere than where the run puts it.
_NOT_INHERITED = ("MONGODB_URI", "MONGODB_DATABASE", "DATA_DIR", "PORT", "HOST", "BASE_URL", "ALLOWED_HOSTS", "TRUSTED_PROXIES",
                  "TRUSTED_PROXY_HOPS")


class DidNotStart(Exception):
    """The process exited or did not answer in time; the message ends with its output."""


def env_for(**settings: str) -> dict[str, str]:
    """This process's environment without the server's placement, plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}, **settings}


def start(command: list[str], env: t.Mapping[str, str], log_path: Path, ready_url: str) -> subprocess.Popen[bytes]:
    """Start ``command`` (its output to ``log_path``) and wait until ``ready_url`` answers 2xx.

    :raises DidNotStart: after stopping it, with the tail of its output.
    """
    with open(log_path, "ab") as log:
        # A session of its own: Ctrl-C reaches the run alone, which stops its processes in order.
        process = subprocess.Popen(command, env=dict(env), cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if requests.get(ready_url, timeout=1).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop(process)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    raise DidNotStart(f"{ready_url} did not answer; the output of {' '.join(command[-2:])}:\n{tail}")


def stop(process: subprocess.Popen[bytes], stop_signal: signal.Signals = signal.SIGINT) -> None:
    """``stop_signal`` first (SIGINT: what Ctrl-C sends ``serve``, which stops gunicorn, then its
    database), then SIGKILL to the whole tree if it takes longer than :data:`STOP_SECONDS`."""
    if process.poll() is not None:
        return
    tree = descendants(process.pid)
    process.send_signal(stop_signal)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        for p in [psutil.Process(process.pid), *tree]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        process.wait()


@contextlib.contextmanager
def running(command: list[str], env: t.Mapping[str, str], log_path: Path, ready_url: str,
            stop_signal: signal.Signals = signal.SIGINT) -> t.Iterator[subprocess.Popen[bytes]]:
    process = start(command, env, log_path, ready_url)
    try:
        yield process
    finally:
        stop(process, stop_signal)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def gunicorn_workers(pid: int) -> list[psutil.Process]:
    """The gunicorn workers under ``pid`` (a gunicorn master, or ``serve``, which starts one): the
    processes whose parent is a gunicorn."""
    workers = []
    for p in descendants(pid):
        try:
            parent = p.parent()
            if parent is not None and "gunicorn" in " ".join(parent.cmdline()):
                workers.append(p)
        except psutil.NoSuchProcess:  # gone, or its parent is
            continue
    return workers
