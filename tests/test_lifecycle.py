"""The server as `make run` runs it, over restarts and database outages."""

from __future__ import annotations

import os
import signal
import time
import typing as t

import requests

from fhir_server.embedded_db import EmbeddedDatabase
from fhir_server.outcome import Msg, issue

from .support import Api, fresh_role, outcome_messages, start_server


def test_a_created_role_survives_a_restart_of_server_and_database(tmp_path):
    data_dir = tmp_path / "var"
    server = start_server(data_dir)  # no MONGODB_URI: the embedded database, as `make run`
    key = server.api_key
    created = Api(server).create(fresh_role())
    assert created.status_code == 201
    assert server.stop() == 0
    assert not (data_dir / "mongodb-uri").exists()  # the database was stopped, not left running

    server = start_server(data_dir)
    try:
        assert server.api_key == key  # the key in the database is kept; no new one is made
        read = Api(server).get(f"/PractitionerRole/{created.json()['id']}")
        assert read.status_code == 200 and read.json() == created.json()
        assert Api(server).create(fresh_role()).json()["id"] != created.json()["id"]
    finally:
        server.stop()


def test_an_unavailable_database_gives_503_and_the_server_recovers(tmp_path):
    db = EmbeddedDatabase(tmp_path / "db")
    db.start()
    server = start_server(tmp_path / "var", MONGODB_URI=db.uri, API_KEY_CACHE_SECONDS="60", DB_TIMEOUT_MS="500")
    api = Api(server)
    try:
        assert api.get("/PractitionerRole/R00000029-P").status_code == 200
        db.stop()
        for call in (lambda: api.create(fresh_role()), lambda: api.get("/PractitionerRole/R00000029-P")):
            response = call()
            assert response.status_code == 503
            assert outcome_messages(response) == [issue(Msg.DB_UNAVAILABLE).diagnostics]
            assert response.headers["Retry-After"] == "1"
        plain = requests.post(server.base_url + "/v1/practitioner-roles", json={"practitionerId": "99ZZZS", "role": "nurse"},
                              headers={"x-api-key": server.api_key}, timeout=30)
        assert plain.status_code == 503
        assert plain.json()["error"] == {"code": "SERVICE_UNAVAILABLE", "message": issue(Msg.DB_UNAVAILABLE).diagnostics, "fields": {}}
        db.start()
        assert _within_seconds(10, lambda: api.create(fresh_role()).status_code == 201)
    finally:
        server.stop()
        db.stop()


def test_creates_answered_201_survive_a_kill_9_of_the_database(tmp_path):
    """Found by `make reliability`: with the default write concern the database acknowledged writes
    still in its journal's buffer, and roles answered 201 just before a kill -9 were gone."""
    db = EmbeddedDatabase(tmp_path / "db")
    db.start()
    server = start_server(tmp_path / "var", MONGODB_URI=db.uri, DB_TIMEOUT_MS="500")
    api = Api(server)
    try:
        created = [api.create(fresh_role()) for _ in range(20)]
        assert {r.status_code for r in created} == {201}
        os.killpg(db.process.pid, signal.SIGKILL)  # right after the last 201: no checkpoint, no clean close
        db.process.wait()
        db.start()
        # The clients find the database again at their next heartbeat; a request before it gets 503.
        assert _within_seconds(10, lambda: api.get("/metadata").ok and api.get("/PractitionerRole/R00000029-P").ok)
        for response in created:
            read = api.get(f"/PractitionerRole/{response.json()['id']}")
            assert read.status_code == 200 and read.json() == response.json()
    finally:
        server.stop()
        db.stop()


def test_the_server_needs_no_credentials_for_metadata_even_when_the_database_is_down(tmp_path):
    db = EmbeddedDatabase(tmp_path / "db")
    db.start()
    server = start_server(tmp_path / "var", MONGODB_URI=db.uri, DB_TIMEOUT_MS="500")
    try:
        db.stop()
        assert requests.get(server.base_url + "/metadata", timeout=10).status_code == 200
    finally:
        server.stop()
        db.stop()


def _within_seconds(seconds: float, succeeded: t.Callable[[], bool]) -> bool:
    """Whether ``succeeded`` becomes true within about ``seconds`` (tried twice a second)."""
    for _ in range(int(seconds * 2)):
        if succeeded():
            return True
        time.sleep(0.5)
    return False
