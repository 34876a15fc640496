"""fhir_server/bench: the load driver, the meters and the report, for real against the baseline app."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from fhir_server import audit
from fhir_server.bench import (
    Request,
    Result,
    Tally,
    check_targets,
    document,
    drive,
    flat_targets,
    format_table,
    open_session,
    percentile,
    write_json,
)
from fhir_server.bench.commands import per_request, scrape
from fhir_server.bench.processes import Meter, gunicorn_workers, process_tree
from fhir_server.bench.scenarios import Same, practitioner_ids, reference_data, role, role_codes
from fhir_server.bench.servers import DATABASE, baseline_server
from fhir_server.bench.stored import ACCESS, StoredRoles
from fhir_server.cli import main
from fhir_server.config import Settings
from fhir_server.definitions import load_definitions
from fhir_server.identifiers import role_number
from fhir_server.migrations import migrate
from fhir_server.outcome import Msg, RequestRejected
from fhir_server.service import Context
from fhir_server.service.practitioner_role import (
    business_key,
    create_practitioner_role,
    read_practitioner_role,
    update_practitioner_role,
)
from fhir_server.service.reference_data import create_reference
from fhir_server.store import Store

from .support import ROOT


@pytest.fixture(scope="module")
def baseline(database, tmp_path_factory):
    with baseline_server(database.uri, tmp_path_factory.mktemp("baseline"), {"WEB_CONCURRENCY": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def stored(database):
    """Five roles loaded by ``--stored``'s loader into the database the baseline app reads."""
    store = Store(database.uri, DATABASE)
    store.ensure_indexes()
    ctx = Context(store, load_definitions(Settings().profiles_dir), access=ACCESS)
    cpns = practitioner_ids(2, "BNT")
    for create in reference_data(cpns, {}):
        create_reference(create.path.strip("/"), create.body, ctx)
    roles = StoredRoles(ctx, cpns, role_codes()[:3])
    yield roles, roles.fill_to(5)
    store.close()


def load(baseline, request: Request, expected: set[int], seconds: float = 0.5) -> Tally:
    async def go() -> Tally:
        async with open_session(2) as session:
            return await drive(session, baseline.base_url, [Same(request), Same(request)], seconds, expected)
    return asyncio.run(go())


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted
    assert [percentile(values, q) for q in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_the_driver_counts_answers_and_the_meter_the_workers(baseline):
    meter = Meter(gunicorn_workers(baseline.pid))
    meter.start()
    tally = load(baseline, Request("POST", "/store", b'{"resourceType": "PractitionerRole"}'), {201})
    usage = meter.stop()
    assert tally.requests > 0 and tally.errors == 0
    assert tally.statuses == {"201": tally.requests}
    assert usage.cpu_seconds > 0 and usage.peak_rss_bytes > 0


def test_an_unexpected_status_is_an_error_with_a_sample(baseline):
    tally = load(baseline, Request("GET", "/store"), {201})
    assert tally.errors == tally.requests > 0
    assert tally.error_samples[0].startswith("GET /store: 405")
    assert len(tally.error_samples) == 1  # the same text is kept once


def test_a_result_goes_into_the_table_and_the_json(baseline, database, tmp_path):
    app, db = Meter(gunicorn_workers(baseline.pid)), Meter(process_tree(database.process.pid))
    app.start()
    db.start()
    tally = load(baseline, Request("GET", "/nothing"), {204})
    result = Result.measured("baseline B: nothing", "GET /nothing", tally, app.stop(), db.stop(), 0.0)
    failed = Result("create", "POST /PractitionerRole", failure="RuntimeError: no server")
    targets = check_targets([result, failed], connections=2)
    assert {t.met for t in targets} == {None}
    table = format_table([result, failed], targets)
    assert "baseline B: nothing" in table and "could not run: RuntimeError: no server" in table

    started = dt.datetime(2026, 1, 2, 3, 4, 5)
    dated = write_json(document([result, failed], targets, {"options": {"seconds": 0.5}}), tmp_path, started)
    assert dated.name == "bench-20260102T030405.json"
    saved = json.loads((tmp_path / "latest.json").read_text())
    assert saved == json.loads(dated.read_text())
    assert saved["scenarios"][0]["requests"] == tally.requests
    assert saved["scenarios"][1]["failure"] == "RuntimeError: no server"
    assert {"text", "met", "figures"} <= saved["targets"][0].keys()


def test_targets_compare_each_scenario_with_its_baseline_and_count_its_commands():
    store = Result("baseline A: store", "POST /store", requests=1000, per_second=500.0, p99_ms=20.0, app_cpu_ms=1.0)
    find = Result("baseline C: find", "GET /find/1", requests=1000, per_second=600.0, app_cpu_ms=1.0)
    create = Result("create", "POST /PractitionerRole", requests=700, per_second=350.0, p99_ms=24.0, app_cpu_ms=2.5, db_commands=3.0)
    read = Result("read", "GET /PractitionerRole/1", requests=500, per_second=300.0, app_cpu_ms=1.5, db_commands=1.06)
    met = {t.text: t.met for t in check_targets([store, create, find, read], connections=16)}
    assert met == {"create: at most 3 DB commands per request": True, "read: at most 1 DB commands per request": False,
                   "vread: at most 1 DB commands per request": None, "search + _include: at most 3 DB commands per request": None,
                   "update: at most 3 DB commands per request": None,
                   "create throughput >= 35% of baseline A's": True, "app CPU per create <= 2x baseline A's": False,
                   "read throughput >= 60% of baseline C's": False, "app CPU per read <= 2x baseline C's": True,
                   "create p99 < 50 ms at 16 connections": True}


def test_flat_targets_compare_the_most_roles_stored_with_the_fewest():
    def at(stored: int, cpu: float, p50: float) -> Result:
        return Result("read", "GET", requests=100, app_cpu_ms=cpu, db_cpu_ms=1.0, p50_ms=p50, stored_roles=stored)

    [flat] = flat_targets([at(1000, 1.0, 10.0)], [at(100000, 1.3, 11.0)])
    assert (flat.text, flat.met) == ("read: cost at 100000 stored roles <= 1.2x that at 1000", True)
    [grown] = flat_targets([at(1000, 1.0, 10.0)], [at(100000, 1.0, 13.0)])
    assert grown.met is False and "p50 10.0 -> 13.0 ms = 1.30x" in grown.figures


def test_stored_roles_are_stored_as_a_create_stores_them(stored):
    roles, loaded = stored
    ctx = roles.ctx
    assert loaded.roles == 5 and roles.count() == 5
    assert roles.fill_to(4).roles == 0  # as many are stored already
    docs = list(ctx.store.db["practitioner_roles"].find({}, {"resource": 1}))
    for doc in docs:
        resource = read_practitioner_role(doc["_id"], ctx)
        assert resource["meta"]["versionId"] == "1" and resource["identifier"][0]["value"] == doc["_id"]
        assert ctx.store.roles.version(doc["_id"], 1) is not None
        record = ctx.store.roles.provenance(doc["_id"], 1)
        assert record is not None and record["op"] == audit.CREATE
        assert ctx.store.roles.would_clash(business_key(resource, ctx), resource.get("period"), None)
    # The same role again is a duplicate; a new one takes an id above the loaded ones (the counter moved).
    cpn = practitioner_ids(2, "BNT")[0]
    with pytest.raises(RequestRejected) as refused:
        create_practitioner_role(role(cpn, role_codes()[0]), ctx)
    assert refused.value.issues[0].diagnostics == Msg.DUPLICATE.value.text
    created = create_practitioner_role(role(cpn, role_codes()[5]), ctx).resource
    assert role_number(created["id"]) > max(role_number(doc["_id"]) for doc in docs)


def test_commands_are_counted_at_the_apps_metrics(baseline, stored):
    async def sent(request: Request, expected: set[int]) -> tuple[Tally, float, dict[str, float]]:
        async with open_session(2) as session:
            before = await scrape(session, baseline.base_url)
            tally = await drive(session, baseline.base_url, [Same(request), Same(request)], 0.5, expected)
            return (tally, *per_request(before, await scrape(session, baseline.base_url), tally.requests))

    tally, per, by_name = asyncio.run(sent(Request("POST", "/store", b'{"resourceType": "PractitionerRole"}'), {201}))
    assert tally.requests > 0 and per == 1.0 and by_name["insert"] == 1.0
    role_id = stored[0].ctx.store.db["practitioner_roles"].find_one({}, {"_id": 1})["_id"]
    tally, per, by_name = asyncio.run(sent(Request("GET", f"/find/{role_id}"), {200}))
    assert tally.requests > 0 and tally.errors == 0 and per == 1.0 and by_name["find"] == 1.0
    assert requests.get(f"{baseline.base_url}/find/{role_id}", timeout=5).json()["id"] == role_id
    assert requests.get(f"{baseline.base_url}/find/RZZZZZ", timeout=5).status_code == 404


def test_stored_counts_must_be_whole_numbers():
    result = CliRunner().invoke(main, ["bench", "--stored", "1000,many"])
    assert result.exit_code == 2 and "comma-separated whole numbers" in result.output


def test_a_stored_load_beside_a_role_of_one_of_its_business_keys_passes_check(database):
    # The roles' reservations go in bulk as new keys' documents; a key already stored is reserved as a
    # create reserves it.
    name = "fhir_bench_stored_check"
    store = Store(database.uri, name)
    store.db.client.drop_database(name)
    try:
        ctx = Context(store, load_definitions(Settings().profiles_dir), access=ACCESS)
        migrate(ctx, 60)
        cpns, codes = practitioner_ids(2, "BNK"), role_codes()[:4]
        for create in reference_data(cpns, {}):
            create_reference(create.path.strip("/"), create.body, ctx)
        # A role of the first stored role's business key, ended: its key is stored, holding no period.
        before = create_practitioner_role(role(cpns[0], codes[0]), ctx).resource
        ended = json.loads((ROOT / "tests/data/R00000197-A.PUT-update-end-date-and-reason.json").read_text())
        update = {**before, "period": ended["period"],
                  "extension": [*before.get("extension", []), *(e for e in ended["extension"] if "status-reason" in e["url"])]}
        update_practitioner_role(before["id"], json.dumps(update).encode(), 'W/"1"', ctx)
        assert store.db["role_keys"].find_one({"_id": business_key(before, ctx)})["periods"] == []
        assert StoredRoles(ctx, cpns, codes).fill_to(8).roles == 7
        periods = store.db["role_keys"].find_one({"_id": business_key(before, ctx)})["periods"]
        holder = store.db["practitioner_roles"].find_one({"key": business_key(before, ctx), "_id": {"$ne": before["id"]}})
        assert [(p["role"], p["by"]) for p in periods] == [(holder["_id"], holder["held"])]
        env = {**os.environ, "MONGODB_URI": database.uri, "MONGODB_DATABASE": name}
        checked = subprocess.run([sys.executable, "-m", "fhir_server", "check"], env=env, cwd=ROOT, capture_output=True,
                                 text=True, timeout=120)
        assert (checked.returncode, checked.stdout.strip()) == (0, "No problems found."), checked.stdout + checked.stderr
    finally:
        store.db.client.drop_database(name)
        store.close()
