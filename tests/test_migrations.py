"""``fhir-server migrate``, the two modes of ``serve``, and ``fhir-server check [--repair]``, run as an
operator runs them, each on a database of its own in the shared SecantusDB."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import requests
from pymongo import MongoClient

from fhir_server import migrations
from fhir_server.auth import Access
from fhir_server.definitions import load_definitions
from fhir_server.migrations import SCHEMA_VERSION
from fhir_server.seed import load_example_data
from fhir_server.service import Context
from fhir_server.store import Store

from .support import ROOT, register_client, start_server

LEASE = "2"  # seconds: a killed migrate's lock lapses soon


def command(*args: str, uri: str, database: str, data_dir: Path, **env: str) -> list[t.Any]:
    full_env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DATABASE": database, "DATA_DIR": str(data_dir),
                "MIGRATION_LEASE_SECONDS": LEASE, **env}
    return [[sys.executable, "-m", "fhir_server", *args], full_env]


def run(*args: str, **kw: t.Any) -> subprocess.CompletedProcess[str]:
    argv, env = command(*args, **kw)
    return subprocess.run(argv, check=False, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def own_db(database: t.Any, request: pytest.FixtureRequest) -> t.Iterator[t.Any]:
    """A database of the test's own, empty."""
    client: MongoClient[dict[str, t.Any]] = MongoClient(database.uri)
    name = "fhir_" + request.node.name[:40]
    client.drop_database(name)
    yield client[name]
    client.close()


def schema(db: t.Any) -> tuple[int, list[int]]:
    doc = db["schema"].find_one({"_id": "version"}) or {"version": 0, "applied": []}
    return doc["version"], [a["version"] for a in doc["applied"]]


def test_two_migrates_at_once_then_a_production_server_serves_no_example_data(database, own_db, tmp_path):
    mongo = own_db
    where = {"uri": database.uri, "database": mongo.name, "data_dir": tmp_path / "var"}
    both = [subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for argv, env in [command("migrate", **where)] * 2]
    outputs = [p.communicate(timeout=120)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    assert schema(mongo) == (SCHEMA_VERSION, list(range(1, SCHEMA_VERSION + 1)))  # each migration recorded once
    assert mongo["schema"].find_one({"_id": "lock"}) is None  # released

    data_dir = tmp_path / "var"
    server = start_server(data_dir, MONGODB_URI=database.uri, MONGODB_DATABASE=mongo.name, FHIR_SERVER_ENV="production",
                          ALLOWED_HOSTS="127.0.0.1")
    try:
        credentials = register_client(mongo, "operator")  # production registers none of its own
        headers = server.headers(credentials=credentials)
        found = requests.get(server.base_url + "/PractitionerRole", params={"practitioner": "90ZZLP"}, headers=headers, timeout=30)
        assert (found.status_code, found.json()["total"]) == (200, 0)
        assert requests.get(server.base_url + "/Practitioner/90ZZLP", headers=headers, timeout=30).status_code == 404
        assert requests.get(server.base_url + "/metrics", timeout=30).status_code == 401  # no METRICS: token
        assert requests.get(server.base_url + "/readyz", timeout=30).status_code == 200
    finally:
        server.stop()
    assert not (data_dir / "dev-client.json").exists() and not (data_dir / "dev-api-key").exists()
    assert mongo["clients"].count_documents({}) == 1  # the operator's only
    output = (data_dir.parent / f"server-{server.base_url.rsplit(':', 1)[1]}.log").read_text()
    assert "Serving on" in output
    secrets = [credentials.api_key, *(k["pem"].splitlines()[1] for k in mongo["signing_keys"].find())]  # a line of the key
    assert len(secrets) == 2 and not [s for s in secrets if s in output]


def test_a_production_server_touches_nothing_under_data_dir(database, own_db, tmp_path):
    where = {"uri": database.uri, "database": own_db.name, "data_dir": tmp_path / "var"}
    assert run("migrate", **where).returncode == 0
    shared = tmp_path / "shared"  # a folder of others' (say, a home folder set as DATA_DIR by mistake)
    shared.mkdir(mode=0o755)
    (shared / "notes.txt").write_text("mine")
    (shared / "notes.txt").chmod(0o644)
    blocked = tmp_path / "a-file"  # no folder can be made under it, as on a read-only file system
    blocked.write_text("")
    for data_dir in (shared, blocked / "var"):
        server = start_server(tmp_path / "var", MONGODB_URI=database.uri, MONGODB_DATABASE=own_db.name,
                              FHIR_SERVER_ENV="production", ALLOWED_HOSTS="127.0.0.1", DATA_DIR=str(data_dir))
        try:
            assert requests.get(server.base_url + "/readyz", timeout=30).status_code == 200
        finally:
            server.stop()
    assert (shared.stat().st_mode & 0o777, (shared / "notes.txt").stat().st_mode & 0o777) == (0o755, 0o644)
    assert [p.name for p in shared.iterdir()] == ["notes.txt"]


def test_a_production_server_refuses_a_database_at_another_schema_version(database, own_db, tmp_path):
    mongo = own_db
    where = {"uri": database.uri, "database": mongo.name, "data_dir": tmp_path / "var"}
    fresh = run("serve", **where, FHIR_SERVER_ENV="production", ALLOWED_HOSTS="127.0.0.1", PORT="9")
    assert fresh.returncode != 0
    assert fresh.stderr.splitlines() == [f"Error: {migrations.mismatch(0)}"]
    assert "`fhir-server migrate`" in fresh.stderr
    mongo["schema"].insert_one({"_id": "version", "version": SCHEMA_VERSION + 1, "applied": []})
    newer = run("serve", **where, FHIR_SERVER_ENV="production", ALLOWED_HOSTS="127.0.0.1", PORT="9")
    assert (newer.returncode, newer.stderr.splitlines()) == (1, [f"Error: {migrations.mismatch(SCHEMA_VERSION + 1)}"])
    nameless = run("serve", **where, FHIR_SERVER_ENV="production", PORT="9")  # neither BASE_URL nor ALLOWED_HOSTS
    assert nameless.returncode == 2 and "set BASE_URL" in nameless.stderr
    assert mongo["clients"].count_documents({}) == 0 and mongo["reference_resources"].count_documents({}) == 0


def test_a_migrate_killed_while_it_holds_the_lock_is_resumed_by_the_next(database, own_db, tmp_path):
    mongo = own_db
    where = {"uri": database.uri, "database": mongo.name, "data_dir": tmp_path / "var"}
    argv, env = command("migrate", **where)
    first = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    # Killed once it has recorded its first migration: between steps, or in the middle of the next.
    while mongo["schema"].find_one({"_id": "version"}) is None and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert first.returncode == -signal.SIGKILL
    killed_at, _ = schema(mongo)
    assert killed_at < SCHEMA_VERSION
    assert mongo["schema"].find_one({"_id": "lock"}) is not None  # left behind

    again = run("migrate", **where)
    assert again.returncode == 0, again.stderr
    assert schema(mongo) == (SCHEMA_VERSION, list(range(1, SCHEMA_VERSION + 1)))
    assert f"{SCHEMA_VERSION - killed_at} migration(s) applied" in again.stdout
    assert "identifiers_1" in mongo["practitioner_roles"].index_information()


def test_a_development_server_is_migrated_and_has_the_example_data(server, api):
    client: MongoClient[dict[str, t.Any]] = MongoClient(server.env["MONGODB_URI"])
    try:
        assert schema(client[server.env["MONGODB_DATABASE"]])[0] == SCHEMA_VERSION
    finally:
        client.close()
    found = api.get("/PractitionerRole", params={"practitioner": "90ZZLP"}).json()
    assert found["total"] >= 2  # the IG's examples R00000012-G and R00000029-P


# --- check ----------------------------------------------------------------------------------------------

def seeded(uri: str, name: str) -> None:
    """A database prepared as a development server prepares it: migrated, with the IG's example data."""
    store = Store(uri, name)
    try:
        ctx = Context(store, load_definitions(ROOT / "profiles"), access=Access.system("test"))
        migrations.migrate(ctx, float(LEASE))
        assert load_example_data(ctx)
    finally:
        store.close()


def test_check_finds_each_broken_invariant_and_repair_mends_the_mendable(database, own_db, tmp_path):
    mongo = own_db
    where = {"uri": database.uri, "database": mongo.name, "data_dir": tmp_path / "var"}
    seeded(database.uri, mongo.name)
    clean = run("check", **where)
    assert (clean.returncode, clean.stdout.splitlines()) == (0, ["No problems found."]), clean.stdout + clean.stderr

    roles, versions, keys = mongo["practitioner_roles"], mongo["practitioner_role_versions"], mongo["role_keys"]
    holding = sorted((r for r in roles.find() if r["held"]), key=lambda r: r["_id"])
    # 1. A held period lost from its key.
    lost = holding[0]
    keys.update_one({"_id": lost["key"]}, {"$pull": {"periods": {"by": lost["held"]}}})
    # 2. A period held for a role that does not exist, its lease over.
    orphan = "R99999999-Z/0"
    keys.update_one({"_id": holding[-1]["key"]}, {"$push": {"periods": {
        "s": "2001-01-01", "e": "2001-01-02", "role": "R99999999-Z", "by": orphan, "day": None,
        "at": dt.datetime(2001, 1, 1, tzinfo=dt.UTC), "until": dt.datetime(2001, 1, 1, tzinfo=dt.UTC)}}})
    # 3. The id counter behind the ids issued.
    mongo["counters"].update_one({"_id": "practitioner_role"}, {"$set": {"value": 1}})
    # 4. A role's current version missing from the versions (a crash between the two writes).
    last = roles.find_one({"vid": 1, "_id": {"$ne": lost["_id"]}})  # for 5.
    current = roles.find_one({"_id": {"$nin": [lost["_id"], last["_id"]]}}, sort=[("_id", 1)])
    versions.delete_one({"_id": f"{current['_id']}/{current['vid']}"})
    # 5. An older version lost: a role at version 2 whose version 1 is gone.
    v1 = versions.find_one({"_id": f"{last['_id']}/{last['vid']}"})
    v2 = {**v1, "_id": f"{last['_id']}/{last['vid'] + 1}", "vid": last["vid"] + 1,
          "provenance": {**v1["provenance"], "vid": last["vid"] + 1, "op": "UPDATE"}}
    v2["resource"] = {**v1["resource"], "meta": {**v1["resource"]["meta"], "versionId": str(last["vid"] + 1)}}
    versions.delete_one({"_id": v1["_id"]})
    versions.insert_one(v2)
    roles.update_one({"_id": last["_id"]}, {"$set": {"vid": v2["vid"], "resource": v2["resource"], "provenance": v2["provenance"]}})
    # 6. One identifier on two records (past the unique index, as a restore without indexes might leave it).
    references = mongo["reference_resources"]
    references.drop_index("refs_1")
    references.update_one({"_id": "Practitioner/97ZACB"}, {"$push": {"refs": "Practitioner/98ZZQJ"}})

    broken = run("check", **where)
    assert broken.returncode == 1
    lines = broken.stdout.splitlines()
    assert len(lines) == 6, lines
    expected = [(lost["_id"], lost["held"], "missing"), (orphan, "nobody"), ("counter",), (f"{current['_id']} version {current['vid']}",),
                (f"{last['_id']} version {last['vid']}",), ("Practitioner/98ZZQJ", "Practitioner/97ZACB")]
    for words in expected:
        assert len([line for line in lines if all(w in line for w in words)]) == 1, (words, lines)

    repaired = run("check", "--repair", **where)
    assert repaired.returncode == 1  # two could not be mended
    done = [line.removeprefix("repaired: ") for line in repaired.stdout.splitlines() if line.startswith("repaired: ")]
    left = [line.removeprefix("not repaired: ") for line in repaired.stdout.splitlines() if line.startswith("not repaired: ")]
    assert len(done) == 4 and len(left) == 2 and sorted(done + left) == sorted(lines)
    assert all(last["_id"] in line or "Practitioner/98ZZQJ" in line for line in left)
    assert any(p["by"] == lost["held"] and p["role"] == lost["_id"] for p in keys.find_one({"_id": lost["key"]})["periods"])
    assert not any(p["by"] == orphan for k in keys.find() for p in k["periods"])
    assert mongo["counters"].find_one({"_id": "practitioner_role"})["value"] >= max(int(r["_id"][1:9]) for r in roles.find())
    assert versions.find_one({"_id": f"{current['_id']}/{current['vid']}"})["resource"] == current["resource"]

    # What needs a person, done by hand: the lost version restored, the identifier given back.
    versions.insert_one(v1)
    references.update_one({"_id": "Practitioner/97ZACB"}, {"$pull": {"refs": "Practitioner/98ZZQJ"}})
    mended = run("check", **where)
    assert (mended.returncode, mended.stdout.splitlines()) == (0, ["No problems found."]), mended.stdout


def test_commands_say_in_one_line_when_the_database_does_not_answer(tmp_path):
    nowhere = {"uri": "mongodb://127.0.0.1:9", "database": "fhir", "data_dir": tmp_path / "var", "DB_TIMEOUT_MS": "300"}
    for args in (("migrate",), ("check",), ("serve",)):
        done = run(*args, **nowhere, FHIR_SERVER_ENV="production", ALLOWED_HOSTS="127.0.0.1", PORT="9")
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith("Error: the database did not answer in time") and "Traceback" not in done.stderr, args
