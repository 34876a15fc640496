"""``fhir-server load``: Bundles and NDJSON of reference data, run as a user runs it, on the shared
SecantusDB in a database of its own, emptied before each test."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymongo import MongoClient

from fhir_server import exact_json
from fhir_server.cli import main
from fhir_server.outcome import Msg
from fhir_server.store.codecs import TYPE_REGISTRY

from .support import ROOT, text

DATABASE = "fhir_loader_test"
NDJSON = "tests/data/load-references.ndjson"  # Practitioner 98ZZQJ, 90ZZLP; Organization GZZ956-B
BUNDLE = "tests/data/load-bundle.json"  # a transaction: Location FZZ941-D, FZZ958-K; Organization GZZ991-D
REJECTED = "tests/data/load-rejected.ndjson"
LOADED = {"Practitioner/98ZZQJ", "Practitioner/90ZZLP", "Organization/GZZ956-B",
          "Location/FZZ941-D", "Location/FZZ958-K", "Organization/GZZ991-D"}


@pytest.fixture
def db(database: t.Any) -> t.Iterator[t.Any]:
    client: MongoClient[dict[str, t.Any]] = MongoClient(database.uri, type_registry=TYPE_REGISTRY)  # decimals as Decimal
    client.drop_database(DATABASE)
    yield client[DATABASE]
    client.close()


@pytest.fixture
def load(database: t.Any, db: t.Any, tmp_path: Path) -> t.Callable[..., subprocess.CompletedProcess[str]]:
    env = {"MONGODB_URI": database.uri, "MONGODB_DATABASE": DATABASE, "DATA_DIR": str(tmp_path / "var")}

    def run(*files: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fhir_server", "load", *map(str, files)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    return run


def summary(created: int = 0, updated: int = 0, unchanged: int = 0, rejected: int = 0) -> str:
    return f"{created} created, {updated} updated, {unchanged} unchanged, {rejected} rejected"


def stored(db: t.Any) -> dict[str, dict[str, t.Any]]:
    return {d["_id"]: d["resource"] for d in db["reference_resources"].find()}


def records_in(path: Path) -> list[dict[str, t.Any]]:
    doc = exact_json.loads(path.read_text())
    return [e["resource"] for e in doc["entry"]] if doc["resourceType"] == "Bundle" else [doc]


def test_ndjson_and_a_bundle_create_the_records_and_a_second_load_changes_nothing(load, db):
    first = load(NDJSON, BUNDLE)
    assert (first.returncode, first.stdout, first.stderr) == (0, summary(created=6) + "\n", "")  # no bar off a terminal
    records = stored(db)
    assert set(records) == LOADED
    in_files = [exact_json.loads(line) for line in (ROOT / NDJSON).read_text().splitlines()] + records_in(ROOT / BUNDLE)
    for resource in in_files:
        record = records[f"{resource['resourceType']}/{resource['id']}"]
        assert record["meta"]["versionId"] == "1"
        # Compared as JSON text: the geocodes' decimals are stored digit for digit.
        assert exact_json.same({k: v for k, v in record.items() if k != "meta"}, {k: v for k, v in resource.items() if k != "meta"})

    again = load(NDJSON, BUNDLE)
    assert (again.returncode, again.stdout) == (0, summary(unchanged=6) + "\n")
    assert stored(db) == records


def test_a_changed_record_is_updated_to_version_2(load, db, tmp_path):
    assert load(NDJSON).returncode == 0
    lines = (ROOT / NDJSON).read_text().splitlines()
    changed = json.loads(lines[0])
    changed["name"][0]["family"] = "Renamed"
    del changed["id"]  # the official hpi-person-id names the record, as on a create
    (tmp_path / "changed.ndjson").write_text("\n".join([json.dumps(changed), *lines[1:]]) + "\n")

    result = load(tmp_path / "changed.ndjson")
    assert (result.returncode, result.stdout) == (0, summary(updated=1, unchanged=2) + "\n")
    records = stored(db)
    assert records["Practitioner/98ZZQJ"]["meta"]["versionId"] == "2"
    assert records["Practitioner/98ZZQJ"]["name"][0]["family"] == "Renamed"
    assert db["reference_resources"].find_one({"_id": "Practitioner/98ZZQJ"})["vid"] == 2
    assert {records[k]["meta"]["versionId"] for k in ("Practitioner/90ZZLP", "Organization/GZZ956-B")} == {"1"}


def test_rejected_lines_are_listed_with_line_and_reasons_and_nothing_of_them_is_stored(load, db):
    # Line 1 a valid Practitioner, line 2 blank, line 3 not JSON, line 4 a PractitionerRole,
    # line 5 a Practitioner whose hpi-person-id is 12345.
    result = load(REJECTED)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        summary(created=1, rejected=3),
        "Rejected:",
        f"  {REJECTED}, line 3",
        f"    {text(Msg.LOAD_NOT_JSON, detail='Expecting property name enclosed in double quotes at column 49')}",
        f"  {REJECTED}, line 4",
        f"    {text(Msg.WRONG_RESOURCE_TYPE, expected='Practitioner, Organization or Location')}",
        f"  {REJECTED}, line 5",
        f"    {text(Msg.REFERENCE_ID_INVALID, name='hpi-person-id', value='12345')} (at Practitioner.identifier[0].value)",
    ]
    assert set(stored(db)) == {"Practitioner/91ZABY"}
    assert db["practitioner_roles"].count_documents({}) == 0


def test_any_bundle_type_and_its_rejected_entries_by_index(load, db, tmp_path):
    organization, role = records_in(ROOT / BUNDLE)[2], json.loads((ROOT / REJECTED).read_text().splitlines()[3])
    bundle = tmp_path / "found.json"
    bundle.write_text(exact_json.dumps({"resourceType": "Bundle", "type": "searchset",
                                        "entry": [{"resource": role}, {"resource": organization}, {"fullUrl": "urn:uuid:1"}]}))
    result = load(bundle)
    wrong_type = text(Msg.WRONG_RESOURCE_TYPE, expected="Practitioner, Organization or Location")
    assert (result.returncode, result.stdout.splitlines()) == (1, [
        summary(created=1, rejected=2), "Rejected:",
        f"  {bundle}, Bundle.entry[0]", f"    {wrong_type}",
        f"  {bundle}, Bundle.entry[2]", f"    {wrong_type}",
    ])
    assert set(stored(db)) == {"Organization/GZZ991-D"}


@pytest.mark.parametrize("content", ["[1, 2]", '{"name": "no resourceType"}', '{"resourceType": "Bundle", "entry": {}}',
                                     "not JSON", b"\xff\xfe\x00"])
def test_a_file_that_is_neither_bundle_nor_resource_stops_the_load_before_anything_is_stored(load, db, tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = load(NDJSON, bad)
    assert result.returncode == 2
    assert "Error:" in result.stderr and str(bad) in result.stderr and "Traceback" not in result.stderr
    assert stored(db) == {}


def test_a_missing_file_is_a_usage_error(load, db, tmp_path):
    result = load(tmp_path / "missing.ndjson")
    assert result.returncode == 2 and "missing.ndjson" in result.stderr and "Traceback" not in result.stderr


def test_help_gives_the_formats_and_the_exit_status():
    shown = CliRunner().invoke(main, ["load", "--help"]).output
    assert all(word in shown for word in (".ndjson", "Bundle", "Exit status", "rejected"))


# --- batches: the same outcome as loading each record in turn -------------------------------------------

PERSON = "https://standards.digital.health.nz/ns/hpi-person-id"


def practitioner(cpn: str, family: str = "Loaded", dormant: tuple[str, ...] = ()) -> dict[str, t.Any]:
    return {"resourceType": "Practitioner",
            "identifier": [{"use": "official", "system": PERSON, "value": cpn},
                           *({"use": "old", "system": PERSON, "value": d} for d in dormant)],
            "name": [{"family": family, "given": ["Batch"]}]}


def mixed_file(path: Path) -> Path:
    """New, changed, unchanged, invalid and repeated records, one NDJSON file."""
    lines = (ROOT / NDJSON).read_text().splitlines()
    changed = json.loads(lines[0])
    changed["name"][0]["family"] = "Renamed"
    invalid = practitioner("12345")
    records = [
        json.dumps(practitioner("11BATD", dormant=("90ZZLP",))),   # a stored record's id as its dormant one
        json.dumps(practitioner("11BATA")),                        # new
        json.dumps(changed),                                       # 98ZZQJ changed: version 2
        lines[1],                                                  # 90ZZLP as stored: unchanged
        json.dumps(invalid),                                       # rejected
        json.dumps(practitioner("11BATA", "Second")),              # the new one again, changed: version 2
        '{"resourceType": "Practitioner",',                        # not JSON
        json.dumps(practitioner("11BATB", dormant=("11BATA",))),   # another record's id as its dormant one
        json.dumps(practitioner("11BATA", "Second")),              # as the line before last of it: unchanged
        json.dumps(practitioner("11BATC")),                        # new
        json.dumps({**changed, "name": [{"family": "Third"}]}),    # 98ZZQJ again: version 3
    ]
    path.write_text("\n".join(records) + "\n")
    return path


def one_by_one(uri: str, database: str, paths: list[Path]) -> list[str]:
    """The report of loading each record in turn, through the single-record path."""
    from fhir_server import loader
    from fhir_server.auth import Access
    from fhir_server.config import Settings
    from fhir_server.definitions import load_definitions
    from fhir_server.outcome import RequestRejected
    from fhir_server.service import Context
    from fhir_server.store import Store

    store = Store(uri, database)
    try:
        settings = Settings()
        ctx = Context(store, load_definitions(settings.profiles_dir), limits=settings.limits, access=Access.system("fhir-server"))
        store.ensure_indexes()
        report = loader.Report()
        for item in loader.read_files(paths):
            try:
                report.counts[loader.load_item(item, ctx)] += 1
            except RequestRejected as rejected:
                report.rejected.append(loader.Rejection(item.location, tuple(rejected.issues)))
        return report.lines()
    finally:
        store.close()


def timeless(value: t.Any) -> t.Any:
    """A stored document without the times of its writes, which differ from one load to another."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k not in ("lastUpdated", "_lastUpdated", "at")}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def test_a_batch_gives_the_report_and_the_records_of_loading_each_in_turn(load: t.Any, db: t.Any, database: t.Any,
                                                                          tmp_path: Path) -> None:
    # The same two loads, one by one into another database: the same report, versions and Provenance.
    mixed = mixed_file(tmp_path / "mixed.ndjson")
    client: MongoClient[dict[str, t.Any]] = MongoClient(database.uri, type_registry=TYPE_REGISTRY)
    client.drop_database(DATABASE + "_each")
    try:
        expected = [one_by_one(database.uri, DATABASE + "_each", [ROOT / NDJSON]),
                    one_by_one(database.uri, DATABASE + "_each", [mixed])]
        assert load(NDJSON).stdout.splitlines() == expected[0]
        result = load(mixed)
        assert (result.returncode, result.stdout.splitlines()) == (1, expected[1])
        assert expected[1][0] == summary(created=2, updated=3, unchanged=2, rejected=4)
        each = {d["_id"]: timeless(d) for d in client[DATABASE + "_each"]["reference_resources"].find()}
        batched = {d["_id"]: timeless(d) for d in db["reference_resources"].find()}
        assert batched == each
        assert [p["op"] for p in batched["Practitioner/98ZZQJ"]["provenance"]] == ["CREATE", "UPDATE", "UPDATE"]
        assert batched["Practitioner/11BATA"]["resource"]["meta"]["versionId"] == "2"
        assert "Practitioner/11BATB" not in batched and "Practitioner/11BATD" not in batched
    finally:
        client.drop_database(DATABASE + "_each")
        client.close()


def test_more_records_than_a_batch_are_each_created_once_and_a_second_load_changes_nothing(load: t.Any, db: t.Any,
                                                                                           tmp_path: Path) -> None:
    from fhir_server.loader import BATCH

    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    cpns = [f"{n % 100:02d}BT{letters[n // 100 % 24]}{letters[n // 2400]}" for n in range(BATCH * 2 + 7)]
    path = tmp_path / "many.ndjson"
    path.write_text("".join(json.dumps(practitioner(cpn)) + "\n" for cpn in cpns))
    first = load(path)
    assert (first.returncode, first.stdout) == (0, summary(created=len(cpns)) + "\n"), first.stderr
    docs = list(db["reference_resources"].find())
    assert sorted(d["_id"] for d in docs) == sorted(f"Practitioner/{c}" for c in cpns)
    assert {(d["vid"], len(d["provenance"]), d["provenance"][0]["op"]) for d in docs} == {(1, 1, "CREATE")}
    again = load(path)
    assert (again.returncode, again.stdout) == (0, summary(unchanged=len(cpns)) + "\n")
    assert list(db["reference_resources"].find()) == docs
