"""Requests that need no database never wait on it: with the database frozen (SIGSTOP) and every app
thread of the only worker blocked on it, /metadata and /openapi.json are still answered."""

from __future__ import annotations

import os
import signal
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ..support import Server, start_server

APP_THREADS = 2


@pytest.fixture(scope="module")
def one_worker(own_database, tmp_path_factory) -> t.Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("frozen-server"), MONGODB_URI=own_database.uri, WEB_CONCURRENCY="1",
                           APP_THREADS=str(APP_THREADS), API_KEY_CACHE_SECONDS="0", DB_TIMEOUT_MS="5000")
    yield running
    running.stop()


def test_metadata_and_openapi_are_answered_while_the_database_is_frozen(own_database, one_worker):
    headers = one_worker.headers()
    assert own_database.process is not None
    os.killpg(own_database.process.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(APP_THREADS * 3) as pool:
            # More requests needing the database than the worker has app threads: all of them wait.
            blocked = [pool.submit(requests.get, one_worker.base_url + "/PractitionerRole?practitioner=99ZZZS",
                                   headers=headers, timeout=60) for _ in range(APP_THREADS * 3)]
            time.sleep(0.5)  # let them reach the worker
            metadata = requests.get(one_worker.base_url + "/metadata", timeout=60)
            openapi = requests.get(one_worker.base_url + "/openapi.json", timeout=60)
            waiting = sum(not f.done() for f in blocked)
            assert (metadata.status_code, openapi.status_code) == (200, 200)
            assert waiting == len(blocked)  # answered ahead of every request that needs the database
            os.killpg(own_database.process.pid, signal.SIGCONT)
            for f in blocked:
                assert f.result().status_code in (200, 503)
    finally:
        os.killpg(own_database.process.pid, signal.SIGCONT)
