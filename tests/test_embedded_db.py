"""The embedded database (fhir_server/embedded_db.py) is configured by the server alone."""

from __future__ import annotations

import pytest
from pymongo import MongoClient

from fhir_server.embedded_db import EmbeddedDatabase


def test_a_secantusd_toml_in_the_folder_serve_runs_from_is_not_read(tmp_path, monkeypatch: pytest.MonkeyPatch):
    # Anyone who can write to the folder the server is started from (/tmp, a shared checkout) would
    # otherwise configure its database: TLS that locks the server out, test commands, a cache of any size.
    there = tmp_path / "somewhere"
    there.mkdir()
    (there / "secantusd.toml").write_text('[server]\nenable_test_commands = true\n[storage]\ncache_size = "not a size"\n')
    monkeypatch.chdir(there)
    db = EmbeddedDatabase(tmp_path / "var" / "db")
    db.start()
    try:
        client: MongoClient[dict[str, object]] = MongoClient(db.uri, serverSelectionTimeoutMS=5000)
        try:
            assert client.admin.command("ping")["ok"] == 1
        finally:
            client.close()
    finally:
        db.stop()
