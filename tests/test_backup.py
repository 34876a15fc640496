"""`fhir-server export` and `fhir-server import` (fhir_server/backup.py): a backup restored into a fresh
database answers reads, vreads, history, Provenance and searches as the original did, and keeps
duplicates out and ids unique as it did."""

from __future__ import annotations

import copy
import decimal
import json
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from pymongo import MongoClient

from fhir_server import backup
from fhir_server.cli import common
from fhir_server.config import Settings
from fhir_server.identifiers import role_number
from fhir_server.migrations import SCHEMA_VERSION
from fhir_server.outcome import Msg
from fhir_server.store.backup import RECORDS
from fhir_server.store.codecs import TYPE_REGISTRY

from .support import (
    PERSON,
    ROOT,
    Api,
    Server,
    fresh_cpn,
    fresh_role,
    outcome_messages,
    practitioner,
    start_server,
    text,
)

RESTRICTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
SERVER_ENV = {"RATE_LIMIT": "1000000/hour", "WEB_CONCURRENCY": "2"}
RESTORED = "fhir_restored"


def run_cli(server_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in server_env.items() if k != "PORT"}
    return subprocess.run([sys.executable, "-m", "fhir_server", *args], check=False, env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=180)


class Setup(t.NamedTuple):
    original: Server
    restored: Server
    folder: Path
    person: str
    dormant: str
    role: dict[str, t.Any]  # three versions
    confidential: dict[str, t.Any]


@pytest.fixture(scope="module")
def setup(database: t.Any, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Setup]:
    original = start_server(tmp_path_factory.mktemp("original"), **SERVER_ENV)
    restored: Server | None = None
    try:
        api = Api(original)
        person, dormant = fresh_cpn(), fresh_cpn()
        first = api.post("/Practitioner", practitioner(person)).json()
        merged = copy.deepcopy(first)
        merged["identifier"].append({"use": "old", "system": PERSON, "value": dormant})
        assert api.put(f"/Practitioner/{person}", merged, if_match='W/"1"').status_code == 200
        role = api.create(fresh_role(practitioner={"reference": f"Practitioner/{dormant}"})).json()
        for n, vid in ((1, "1"), (2, "2")):
            role["telecom"] = [{"system": "phone", "value": f"021 555 010{n}", "use": "work"}]
            response = api.put(f"/PractitionerRole/{role['id']}", role, if_match=f'W/"{vid}"')
            assert response.status_code == 200, response.text
            role = response.json()
        labelled = fresh_role(practitioner={"reference": f"Practitioner/{person}"})
        labelled["meta"] = {**labelled["meta"], "security": [RESTRICTED]}
        confidential = api.create(labelled).json()
        folder = tmp_path_factory.mktemp("backup") / "export"
        exported = run_cli(original.env, "export", str(folder))
        assert exported.returncode == 0, exported.stderr
        # Restored as an operator restores: into an empty database of a MongoDB of its own, then served.
        target = {"MONGODB_URI": database.uri, "MONGODB_DATABASE": RESTORED}
        MongoClient(database.uri).drop_database(RESTORED)
        imported = run_cli({**original.env, **target}, "import", str(folder))
        assert imported.returncode == 0, imported.stderr
        restored = start_server(tmp_path_factory.mktemp("restored"), **SERVER_ENV, **target)
        yield Setup(original, restored, folder, person, dormant, role, confidential)
    finally:
        for running in (original, restored):
            if running is not None:
                running.stop()


def uri_of(server: Server) -> str:
    return server.env.get("MONGODB_URI") or (server.data_dir / common.URI_FILE).read_text().strip()


def stored(server: Server) -> t.Any:
    name = server.env.get("MONGODB_DATABASE", "fhir")
    return MongoClient(uri_of(server), type_registry=TYPE_REGISTRY)[name]  # decimals read as the server reads them


def lines(path: Path) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the files ---------------------------------------------------------------------------------------

def test_export_writes_bulk_data_ndjson_readable_by_its_owner_only(setup):
    folder = setup.folder
    assert folder.stat().st_mode & 0o777 == 0o700
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = [*manifest["output"], *manifest["extension"]["history"]]
    assert sorted(e["url"] for e in listed) == sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
    for entry in listed:
        path = folder / entry["url"]
        assert path.stat().st_mode & 0o777 == 0o600
        found = lines(path)
        assert len(found) == entry["count"] and all(r["resourceType"] == entry["type"] for r in found)
    assert (folder / "manifest.json").stat().st_mode & 0o777 == 0o600
    role, confidential = setup.role, setup.confidential
    versions = [r for r in lines(folder / "PractitionerRole.history.ndjson") if r["id"] == role["id"]]
    assert sorted(r["meta"]["versionId"] for r in versions) == ["1", "2", "3"]
    # An operator's backup: the confidential record whole, as stored.
    current = {r["id"]: r for r in lines(folder / "PractitionerRole.ndjson")}
    assert current[confidential["id"]]["meta"]["security"] == [RESTRICTED]
    assert current[confidential["id"]] == confidential  # what the admin who created it was answered
    provenances = {p["id"] for p in lines(folder / "Provenance.ndjson")}
    assert {f"PractitionerRole-{role['id']}-{v}" for v in "123"} | {f"Practitioner-{setup.person}-{v}" for v in "12"} <= provenances


# --- the same answers --------------------------------------------------------------------------------

def answers(server: Server, paths: list[str], *scopes: str) -> list[tuple[str, int, t.Any]]:
    api = Api(server)
    api.session.headers.update(server.headers(*scopes))
    found = []
    for path in paths:
        response = api.get(path)
        body = json.loads(response.text.replace(server.base_url, "BASE"))
        if body.get("resourceType") == "Bundle":  # a searchset's or history's own id and time are its own
            body.pop("id", None)
            body.pop("meta", None)
            for entry in body.get("entry", []):  # as are the ids of the warnings it carries
                if entry["resource"]["resourceType"] == "OperationOutcome":
                    entry.pop("fullUrl")
                    entry["resource"].pop("id")
        found.append((path, response.status_code, body))
    return found


def test_reads_vreads_history_provenance_and_searches_answer_as_on_the_original(setup):
    rid, cid, person, dormant = setup.role["id"], setup.confidential["id"], setup.person, setup.dormant
    paths = [
        f"/PractitionerRole/{rid}", f"/PractitionerRole/{rid}/_history/1", f"/PractitionerRole/{rid}/_history/2",
        f"/PractitionerRole/{rid}/_history", "/PractitionerRole/_history", "/PractitionerRole/_history?_count=3",
        f"/PractitionerRole/{cid}", "/PractitionerRole/R00000015-C", f"/PractitionerRole/{rid}/_history/9",
        f"/Practitioner/{person}", f"/Practitioner/{dormant}", "/Practitioner/98ZZQJ", "/Practitioner/90ZZGJ",
        "/Organization/GZZ998-G", "/Location/FZZ958-K",
        f"/Provenance/PractitionerRole-{rid}-2", f"/Provenance?target=PractitionerRole/{rid}",
        f"/Provenance?target=Practitioner/{person}", "/Provenance?target=Practitioner/98ZZQJ",
        f"/PractitionerRole?practitioner={person}", f"/PractitionerRole?practitioner={dormant}&_include=PractitionerRole:practitioner",
        "/PractitionerRole?practitioner=90ZZLP&_revinclude=Provenance:target",
        f"/PractitionerRole?identifier={rid}&practitioner={person}", f"/Practitioner?identifier={dormant}",
        "/Organization?identifier=GZZ998-G&_revinclude=PractitionerRole:organization",
        f"/PractitionerRole?practitioner={person}&active=true&_sort=-_lastUpdated",
    ]
    original = answers(setup.original, paths)
    assert [status for _, status, _ in original].count(200) >= len(paths) - 2
    assert answers(setup.restored, paths) == original
    # Redaction is the same for a caller without the admin scope.
    redacted = [f"/PractitionerRole/{cid}", f"/PractitionerRole?practitioner={person}", "/PractitionerRole/R00000015-C"]
    scopes = ("PractitionerRole.r", "PractitionerRole.s")
    assert answers(setup.restored, redacted, *scopes) == answers(setup.original, redacted, *scopes)


def numbers(value: t.Any) -> t.Any:
    """``value`` with its decimals as floats: first-start data was stored from floats, a restore keeps
    each number as the server keeps what a client sends (a decimal); both are written the same."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    return float(value) if isinstance(value, decimal.Decimal) else value


def test_what_is_stored_beside_each_record_is_made_again(setup):
    before, after = stored(setup.original), stored(setup.restored)

    def roles(db: t.Any) -> list[dict[str, t.Any]]:  # a reservation's token is new; that it holds one is kept
        return [{**d, "held": d["held"] is not None} for d in db["practitioner_roles"].find({}, sort=[("_id", 1)])]

    def periods(db: t.Any) -> list[tuple[t.Any, ...]]:
        return sorted((d["_id"], p["s"], p["e"], p["role"], p["day"]) for d in db["role_keys"].find() for p in d["periods"])

    def same(restored: list[dict[str, t.Any]], original: list[dict[str, t.Any]]) -> None:
        assert [d["_id"] for d in restored] == [d["_id"] for d in original]
        for a, b in zip(map(numbers, restored), map(numbers, original), strict=True):
            assert {k: (a.get(k), b.get(k)) for k in {*a, *b} if a.get(k) != b.get(k)} == {}, a["_id"]

    same(roles(after), roles(before))
    for collection in ("practitioner_role_versions", "reference_resources"):
        same(list(after[collection].find({}, sort=[("_id", 1)])), list(before[collection].find({}, sort=[("_id", 1)])))
    assert periods(after) == periods(before)
    assert after["counters"].find_one({"_id": "practitioner_role"})["value"] >= \
        before["counters"].find_one({"_id": "practitioner_role"})["value"]


# --- what the restored server does next ---------------------------------------------------------------

def test_the_next_role_gets_a_new_id_and_a_duplicate_is_refused_as_on_the_original(setup):
    imported = [role_number(r["id"]) for r in lines(setup.folder / "PractitionerRole.ndjson")]
    created = Api(setup.restored).create(fresh_role(practitioner={"reference": f"Practitioner/{setup.person}"}))
    assert created.status_code == 201, created.text
    assert role_number(created.json()["id"]) > max(imported)
    duplicate = {k: v for k, v in setup.role.items() if k not in ("id", "meta", "identifier")}
    on_original, on_restored = (Api(s).create(duplicate) for s in (setup.original, setup.restored))
    assert on_restored.status_code == on_original.status_code == 422
    assert outcome_messages(on_restored) == outcome_messages(on_original) == [text(Msg.DUPLICATE)]


def test_import_into_a_database_with_records_refuses_and_changes_nothing(setup):
    db = stored(setup.restored)
    counts = {name: db[name].count_documents({}) for name in RECORDS}
    refused = run_cli(setup.restored.env, "import", str(setup.folder))
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: ") and "Traceback" not in refused.stderr
    assert {name: db[name].count_documents({}) for name in RECORDS} == counts


# --- files that are not an export ---------------------------------------------------------------------

@pytest.fixture
def spare(setup) -> t.Iterator[tuple[Settings, t.Any]]:
    """An empty database on the restored server's MongoDB, to restore into in this process."""
    uri = uri_of(setup.restored)
    settings = Settings(mongodb_uri=uri, database="spare")
    client: MongoClient[dict[str, t.Any]] = MongoClient(uri)
    yield settings, client["spare"]
    client.drop_database("spare")
    client.close()


def edited(setup: Setup, tmp_path: Path, name: str, change: t.Callable[[list[str]], list[str]]) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(setup.folder, folder)
    path = folder / name
    changed = change(path.read_text(encoding="utf-8").splitlines())
    path.write_text("".join(line + "\n" for line in changed), encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in [*manifest["output"], *manifest["extension"]["history"]]:
        if entry["url"] == name:
            entry["count"] = len(changed)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def mislabelled(line: str) -> str:
    provenance = json.loads(line)
    provenance["activity"]["coding"][0]["display"] = "delete"
    return json.dumps(provenance)


def of_a_version_not_kept(line: str) -> str:
    provenance = json.loads(line)
    rtype, rid, _ = provenance["target"][0]["reference"].split("/", 2)
    provenance["id"] = f"{rtype}-{rid}-999999"
    provenance["target"] = [{"reference": f"{rtype}/{rid}/_history/999999"}]
    return json.dumps(provenance)


def changed(line: str, change: t.Callable[[dict[str, t.Any]], t.Any]) -> str:
    resource = json.loads(line)
    change(resource)
    return json.dumps(resource)


@pytest.mark.parametrize(("name", "change"), [
    ("PractitionerRole.history.ndjson", lambda ls: [*ls[:2], "{not json", *ls[2:]]),
    # What no request body may be: nested past any resource, a name MongoDB reads as an operator, a key twice.
    ("Practitioner.ndjson", lambda ls: [*ls, "[" * 100_000 + "]" * 100_000]),
    ("Practitioner.ndjson", lambda ls: [changed(ls[0], lambda r: r.update({"$where": "1"})), *ls[1:]]),
    ("Organization.ndjson", lambda ls: [ls[0][:-1] + ',"id":"G00001-G"}', *ls[1:]]),
    # A record the server would never find by its id, and a role it cannot derive a business key from.
    ("Location.ndjson", lambda ls: [changed(ls[0], lambda r: r.update({"id": "a b"})), *ls[1:]]),
    ("PractitionerRole.ndjson", lambda ls: [changed(ls[0], lambda r: r.pop("practitioner")), *ls[1:]]),
    ("Practitioner.ndjson", lambda ls: [*ls, ls[0].replace('"Practitioner"', '"Organization"', 1)]),
    ("Provenance.ndjson", lambda ls: [*ls[:-1], mislabelled(ls[-1])]),
    ("Provenance.ndjson", lambda ls: [*ls, ls[-1]]),
    ("Location.ndjson", lambda ls: [*ls, ls[0]]),  # read well, then clashes with itself once written
    ("Provenance.ndjson", lambda ls: [*ls, of_a_version_not_kept(ls[-1])]),
])
def test_a_file_that_is_not_an_export_is_refused_and_nothing_is_left(setup, spare, tmp_path, name, change):
    settings, db = spare
    folder = edited(setup, tmp_path, name, change)
    with common.context(settings) as ctx, pytest.raises(backup.BackupError):
        backup.restore(folder, ctx)
    assert {n: db[n].count_documents({}) for n in RECORDS} == dict.fromkeys(RECORDS, 0)


def test_a_truncated_file_is_refused(setup, spare, tmp_path):
    settings, db = spare
    folder = tmp_path / "truncated"
    shutil.copytree(setup.folder, folder)
    path = folder / "PractitionerRole.ndjson"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))
    with common.context(settings) as ctx, pytest.raises(backup.BackupError):
        backup.restore(folder, ctx)
    assert db["practitioner_roles"].count_documents({}) == 0


def test_the_restored_database_passes_check_at_the_current_schema(setup):
    checked = run_cli(setup.restored.env, "check")
    assert (checked.returncode, checked.stdout.strip()) == (0, "No problems found."), checked.stdout + checked.stderr
    assert stored(setup.restored)["schema"].find_one({"_id": "version"})["version"] == SCHEMA_VERSION
