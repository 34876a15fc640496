"""Shared fixtures: one real SecantusDB per test run, and the server started the way `make run` starts
it (``fhir-server serve``: reference data, development key, gunicorn with several workers)."""

from __future__ import annotations

import typing as t

import pytest
from pymongo import MongoClient

from fhir_server.embedded_db import EmbeddedDatabase

from .support import Api, Server, start_server


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[EmbeddedDatabase]:
    db = EmbeddedDatabase(tmp_path_factory.mktemp("mongo") / "db")
    db.start()
    yield db
    db.stop()


@pytest.fixture(scope="session")
def server(database: EmbeddedDatabase, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Server]:
    # Three workers, so that races between processes are real; keys are rechecked on every request.
    # The development key may make as many requests as the suite needs; tests of limits use keys of their own.
    # Its token lasts the whole run; tests of expiry use tokens of their own.
    running = start_server(tmp_path_factory.mktemp("server"), MONGODB_URI=database.uri, MONGODB_DATABASE="fhir_test",
                           WEB_CONCURRENCY="3", API_KEY_CACHE_SECONDS="0", MAX_BODY_BYTES="65536", RATE_LIMIT="1000000/hour",
                           TOKEN_SECONDS="86400", FHIR_SERVER_ENV="development")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def mongo(database: EmbeddedDatabase, server: Server) -> t.Iterator[t.Any]:
    """The server's database, to check what is (and is not) stored."""
    client: MongoClient[dict[str, t.Any]] = MongoClient(database.uri)
    yield client["fhir_test"]
    client.close()


@pytest.fixture(scope="session")
def api(server: Server) -> Api:
    return Api(server)


