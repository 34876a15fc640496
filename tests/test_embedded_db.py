"""The embedded database (fhir_server/embedded_db.py) is configured by the server alone."""

from __future__ import annotations

import pytest
from pymongo import MongoClient

from fhir_server.embedded_db import DatabaseBusy, EmbeddedDatabase


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


def test_a_first_start_that_someone_else_got_into_is_refused(tmp_path):
    # Left as a local user racing the first start would leave it: a user of their own made while the
    # database had no password. (The next start resumes that first start, as after a kill.)
    (tmp_path / "var" / "db").mkdir(parents=True)
    db = EmbeddedDatabase(tmp_path / "var" / "db")
    db._launch(auth=False)
    try:
        db._wait_until_ready(60)
        client: MongoClient[dict[str, object]] = MongoClient(db.uri, serverSelectionTimeoutMS=5000)
        client.admin.command("createUser", "intruder", pwd="theirs", roles=["root"])
        client.close()
    finally:
        db.stop()
    with pytest.raises(DatabaseBusy, match="delete"):
        EmbeddedDatabase(tmp_path / "var" / "db").start()
    assert not (tmp_path / "var" / "database-password").exists()
