"""Fixtures shared by the HTTP tests."""

from __future__ import annotations

import typing as t

import pytest

from fhir_server.embedded_db import EmbeddedDatabase

from ..support import fresh_cpn, practitioner


@pytest.fixture(scope="module")
def person(api) -> str:
    """A practitioner of the module's tests alone, so that searches by it see only their roles."""
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    return cpn


@pytest.fixture(scope="module")
def own_database(tmp_path_factory) -> t.Iterator[EmbeddedDatabase]:
    """A database of the module's own, for a server whose settings or faults the others must not meet."""
    db = EmbeddedDatabase(tmp_path_factory.mktemp("own") / "db")
    db.start()
    yield db
    db.stop()
