"""Liveness and readiness (fhir_server/http/probes.py): public, JSON, never behind the app's threads;
readiness fails within 3 s of the database freezing or going away, and recovers by itself. Requests
that need no database (/metadata, /openapi.json) are answered while it is frozen, too."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests
from pymongo import MongoClient

from fhir_server.embedded_db import EmbeddedDatabase
from fhir_server.migrations import SCHEMA_VERSION
from fhir_server.outcome import Msg

from ..support import Server, outcome_messages, start_server, text

APP_THREADS = 2
READINESS_BOUND_SECONDS = 3.0  # issue 15: "readiness fails within 3 s of the database going away"


@pytest.fixture(scope="module")
def one_worker(own_database, tmp_path_factory) -> t.Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("probes-server"), MONGODB_URI=own_database.uri, WEB_CONCURRENCY="1",
                           APP_THREADS=str(APP_THREADS), API_KEY_CACHE_SECONDS="0", DB_TIMEOUT_MS="5000", METRICS="off")
    yield running
    running.stop()


def probe(server: Server, path: str) -> requests.Response:
    return requests.get(server.base_url + path, timeout=10)


def status_within(server: Server, path: str, wanted: int, seconds: float) -> int:
    """Ask ``path`` until it answers ``wanted`` or ``seconds`` have passed; its last status."""
    deadline = time.monotonic() + seconds
    while True:
        status = probe(server, path).status_code
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_health_and_readiness_need_no_credentials_and_answer_json(one_worker):
    for path, body in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        for _ in range(2):  # the second /healthz is the front's kept answer
            response = probe(one_worker, path)
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "application/json"
            assert response.json() == body
            assert response.headers["X-Request-Id"]
    # Whatever is asked for: never HTML, never a 406.
    html = requests.get(one_worker.base_url + "/readyz", headers={"Accept": "text/html"}, timeout=10)
    assert (html.status_code, html.headers["Content-Type"]) == (200, "application/json")


def test_metrics_off_is_no_route(one_worker):
    response = probe(one_worker, "/metrics")
    assert response.status_code == 404
    assert response.json()["issue"][0]["diagnostics"] == text(Msg.UNKNOWN_ROUTE, method="GET", path="/metrics")


def test_readiness_fails_while_the_database_holds_another_schema_version(one_worker, own_database):
    client: MongoClient[dict[str, t.Any]] = MongoClient(own_database.uri)
    schema = client["fhir"]["schema"]
    kept = schema.find_one({"_id": "version"})
    assert kept is not None and kept["version"] == SCHEMA_VERSION
    try:
        schema.update_one({"_id": "version"}, {"$set": {"version": SCHEMA_VERSION + 1}})
        assert status_within(one_worker, "/readyz", 503, READINESS_BOUND_SECONDS) == 503
        assert outcome_messages(probe(one_worker, "/readyz")) == [text(Msg.NOT_READY_SCHEMA, found=SCHEMA_VERSION + 1,
                                                                         needed=SCHEMA_VERSION)]
    finally:
        schema.replace_one({"_id": "version"}, kept)
        client.close()
    assert status_within(one_worker, "/readyz", 200, READINESS_BOUND_SECONDS) == 200


@contextlib.contextmanager
def frozen_and_busy(db: EmbeddedDatabase, server: Server) -> t.Iterator[list[Future[requests.Response]]]:
    """The database frozen (SIGSTOP) and more requests that need it than the worker has app threads,
    all of them waiting; on leaving, the database thawed and every one of them answered."""
    headers = server.headers()
    assert db.process is not None
    os.killpg(db.process.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(APP_THREADS * 3) as pool:
            blocked = [pool.submit(requests.get, server.base_url + "/PractitionerRole?practitioner=99ZZZS",
                                   headers=headers, timeout=60) for _ in range(APP_THREADS * 3)]
            try:
                yield blocked
            finally:
                os.killpg(db.process.pid, signal.SIGCONT)
            for f in blocked:
                assert f.result().status_code in (200, 503)
    finally:
        os.killpg(db.process.pid, signal.SIGCONT)


def test_metadata_and_openapi_are_answered_while_the_database_is_frozen(own_database, one_worker):
    with frozen_and_busy(own_database, one_worker) as blocked:
        time.sleep(0.5)  # let them reach the worker
        metadata = requests.get(one_worker.base_url + "/metadata", timeout=60)
        openapi = requests.get(one_worker.base_url + "/openapi.json", timeout=60)
        waiting = sum(not f.done() for f in blocked)
        assert (metadata.status_code, openapi.status_code) == (200, 200)
        assert waiting == len(blocked)  # answered ahead of every request that needs the database


def test_readiness_fails_while_the_database_is_frozen_and_recovers(own_database, one_worker):
    with frozen_and_busy(own_database, one_worker) as blocked:
        # Every app thread waits on the frozen database: the probes must not wait behind them.
        assert status_within(one_worker, "/readyz", 503, READINESS_BOUND_SECONDS) == 503
        refused = probe(one_worker, "/readyz")
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert [i["diagnostics"] for i in refused.json()["issue"]] == [text(Msg.NOT_READY_DATABASE, seconds="1")]
        assert probe(one_worker, "/healthz").status_code == 200  # alive all the same: no restart wanted
        assert sum(not f.done() for f in blocked) > 0
    assert status_within(one_worker, "/readyz", 200, 30) == 200


def test_readiness_fails_when_the_database_stops_and_recovers_when_it_is_back(own_database, one_worker):
    assert probe(one_worker, "/readyz").status_code == 200
    own_database.stop()
    restarted = EmbeddedDatabase(own_database.storage_path, port=own_database.port)
    try:
        assert status_within(one_worker, "/readyz", 503, READINESS_BOUND_SECONDS) == 503
        restarted.start()
        assert status_within(one_worker, "/readyz", 200, 30) == 200
    finally:
        restarted.stop()

