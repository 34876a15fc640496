"""Database faults between the server and its database: MongoDB's ``failCommand``
fail point, armed for the server's own client only (appName), fails one command of a create or an
update with a network error before or after it ran, a mongos error or a write concern error; a frozen
database (SIGSTOP) stands for one that stops answering. After each: no 500, a 503 says whether the
change may have been applied (with Retry-After), nothing is stored that the client was told was not,
the client's immediate retry gets 201 or is recognised as the same request (200), no reservation is
left without its role, and every version answered is in the history.

Run over SecantusDB standalone and in its replica-set mode (where the driver retries writes itself).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import time
import typing as t
import uuid
from dataclasses import dataclass

import pytest
from pymongo import MongoClient

from fhir_server.embedded_db import EmbeddedDatabase
from fhir_server.outcome import Msg
from fhir_server.reliability.db_faults import FAULTS  # the faults make reliability injects, one table

from .support import Api, Server, fresh_role, start_server

APP = "fhir-server"  # the server's own client (fhir_server/store/client.py); the rate limits' is another
DATABASE = "faults"
LOCAL = "https://example.org/ns/local-role-id"
# Not among FAULTS: a command held past its time limit (blockConnection). The server answers a request
# only after what it sent can no longer be applied, trusting maxTimeMS as mongod honours it;
# SecantusDB's fail point sleeps before its time limit is armed, and then applies the command anyway.
# Each command of a create, as (command, how many of that command come first): the references read
# (the API key's read, when not cached, comes first), and the reservation, the role and its first
# version in one bulkWrite.
CREATE_COMMANDS = [("find", 0), ("bulkWrite", 0)]
# Each command of an update that moves the period: the current version; the new reservation, the
# compare-and-set replace and the versions in one bulkWrite; the old reservation's release.
UPDATE_COMMANDS = [("find", 0), ("bulkWrite", 0), ("update", 0)]
UNAVAILABLE = {Msg.DB_UNAVAILABLE.value.text, Msg.DB_OUTCOME_UNKNOWN.value.text, Msg.KEY_IN_FLIGHT.value.text}


@dataclass
class Lab:
    database: EmbeddedDatabase
    server: Server
    api: Api
    mongo: t.Any

    def fail(self, command: str, skip: int, fault: dict[str, t.Any], app: str = APP) -> None:
        self.mongo.client.admin.command({"configureFailPoint": "failCommand", "mode": {"skip": skip, "times": 1},
                                         "data": {"failCommands": [command], "appName": app, **fault}})

    def off(self) -> None:
        self.mongo.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


@pytest.fixture(scope="module", params=["standalone", "replica-set"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    root = tmp_path_factory.mktemp(f"faults-{request.param}")
    database = EmbeddedDatabase(root / "db", test_commands=True, replica_set=request.param == "replica-set")
    database.start()
    server = None
    try:
        (root / "server").mkdir()
        server = start_server(root / "server", MONGODB_URI=database.uri, MONGODB_DATABASE=DATABASE, WEB_CONCURRENCY="2",
                              API_KEY_CACHE_SECONDS="3600", RATE_LIMIT="1000000/hour")
        client: MongoClient[dict[str, t.Any]] = MongoClient(database.uri, appname="fault-tests")
        yield Lab(database, server, Api(server), client[DATABASE])
        client.close()
    finally:
        if server is not None:
            server.stop()
        database.stop()


@pytest.fixture(autouse=True)
def no_fail_point_left(lab: Lab) -> t.Iterator[None]:
    yield
    lab.off()


def local_role() -> tuple[dict[str, t.Any], str]:
    """A new role with a client identifier of its own, to find it and to make retries conditional."""
    value = uuid.uuid4().hex
    role = fresh_role()
    role["identifier"] = [*role.get("identifier", []), {"system": LOCAL, "value": value}]
    return role, f"{LOCAL}|{value}"


def stored_with(lab: Lab, token: str) -> list[dict[str, t.Any]]:
    system, value = token.split("|")
    return list(lab.mongo["practitioner_roles"].find({"resource.identifier": {"$elemMatch": {"system": system, "value": value}}}))


def assert_unavailable_answer(response: t.Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert [i["diagnostics"] for i in response.json()["issue"]][0] in UNAVAILABLE


def assert_no_reservation_without_its_role(lab: Lab) -> None:
    """(c): every period held is owned by a stored role (none is left by a request that is over)."""
    owners = {d["_id"]: d.get("held") for d in lab.mongo["practitioner_roles"].find({}, {"held": 1})}
    for key in lab.mongo["role_keys"].find():
        for period in key["periods"]:
            assert owners.get(period["role"]) == period["by"], (key["_id"], period)


def assert_versions_kept(lab: Lab, role: dict[str, t.Any]) -> None:
    """(d): every version up to the current one is in the history."""
    kept = {d["vid"] for d in lab.mongo["practitioner_role_versions"].find({"role": role["_id"]}, {"vid": 1})}
    assert kept == set(range(1, role["vid"] + 1)), (role["_id"], kept)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", CREATE_COMMANDS, ids=lambda c: f"{c[0]}#{c[1] + 1}")
def test_a_fault_at_each_command_of_a_create_leaves_no_untrue_answer(lab: Lab, command: tuple[str, int], fault: str) -> None:
    role, token = local_role()
    retry_with = "key" if hash((command, fault)) % 2 else "condition"
    headers = {"Idempotency-Key": uuid.uuid4().hex} if retry_with == "key" else {"If-None-Exist": f"identifier={token}"}
    lab.fail(*command, FAULTS[fault])

    first = lab.api.post("/PractitionerRole", role, headers=headers)

    assert first.status_code in (201, 503), first.text
    lab.off()
    if first.status_code == 503:
        assert_unavailable_answer(first)
    if first.status_code == 201 or first.json()["issue"][0]["diagnostics"] == Msg.DB_UNAVAILABLE.value.text:
        assert len(stored_with(lab, token)) == (first.status_code == 201)
    retry = lab.api.post("/PractitionerRole", role, headers=headers)
    assert retry.status_code in (200, 201), retry.text
    if first.status_code == 201:
        assert retry.json()["id"] == first.json()["id"]
    [stored] = stored_with(lab, token)
    assert stored["_id"] == retry.json()["id"]
    assert_no_reservation_without_its_role(lab)
    assert_versions_kept(lab, stored)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", UPDATE_COMMANDS, ids=lambda c: f"{c[0]}#{c[1] + 1}")
def test_a_fault_at_each_command_of_an_update_leaves_no_untrue_answer(lab: Lab, command: tuple[str, int], fault: str) -> None:
    role, token = local_role()
    created = lab.api.create(role).json()
    changed = {**created, "period": {**created["period"], "start": "2001-02-03"}}
    lab.fail(*command, FAULTS[fault])

    first = lab.api.put(f"/PractitionerRole/{created['id']}", changed, if_match='W/"1"')

    assert first.status_code in (200, 503), first.text
    lab.off()
    [stored] = stored_with(lab, token)
    if first.status_code == 200:
        assert stored["vid"] == 2
    else:
        assert_unavailable_answer(first)
        if first.json()["issue"][0]["diagnostics"] == Msg.DB_UNAVAILABLE.value.text:
            assert stored["vid"] == 1  # (a): told "not applied", so it was not
    retry = lab.api.put(f"/PractitionerRole/{created['id']}", changed, if_match='W/"1"')
    assert retry.status_code == (200 if stored["vid"] == 1 else 409), retry.text
    [stored] = stored_with(lab, token)
    assert stored["vid"] == 2 and stored["resource"]["period"]["start"] == "2001-02-03"
    assert_no_reservation_without_its_role(lab)
    assert_versions_kept(lab, stored)


@pytest.mark.parametrize("fault", ["network error", "write concern error"])
@pytest.mark.parametrize("command", ["insert", "bulkWrite"], ids=["key's record", "role"])
def test_a_fault_at_each_write_of_a_plain_api_create_leaves_no_untrue_answer(lab: Lab, command: str, fault: str) -> None:
    body = {"practitionerId": "98ZZQJ", "role": "doctor", "organizationName": "A clinic"}
    key = uuid.uuid4().hex
    lab.fail(command, 0, FAULTS[fault])
    first = lab.api.session.post(lab.api.base + "/v1/practitioner-roles", json=body,
                                 headers={"Content-Type": "application/json", "Idempotency-Key": key}, timeout=30)
    lab.off()
    assert first.status_code in (201, 503), first.text
    retry = lab.api.session.post(lab.api.base + "/v1/practitioner-roles", json=body,
                                 headers={"Content-Type": "application/json", "Idempotency-Key": key}, timeout=30)
    assert retry.status_code in (200, 201), retry.text
    assert lab.mongo["practitioner_roles"].count_documents({"request": {"$regex": f"\\|{key}$"}}) == 1


@pytest.mark.parametrize("fault", ["network error", "write concern error", "HostUnreachable"])
def test_a_fault_at_a_reference_data_write_is_a_503_that_says_so(lab: Lab, fault: str) -> None:
    cpn = f"{uuid.uuid4().int % 100:02d}ZZZX"
    practitioner = {"resourceType": "Practitioner", "identifier": [
        {"use": "official", "system": "https://standards.digital.health.nz/ns/hpi-person-id", "value": cpn}]}
    lab.fail("insert", 0, FAULTS[fault])
    first = lab.api.post("/Practitioner", practitioner)
    lab.off()
    if first.status_code == 503:
        assert_unavailable_answer(first)
    else:
        assert first.status_code in (201, 422), first.text  # 422: the check digit of a made-up CPN
    stored = lab.mongo["reference_resources"].count_documents({"_id": f"Practitioner/{cpn}"})
    if first.status_code == 503 and first.json()["issue"][0]["diagnostics"] == Msg.DB_UNAVAILABLE.value.text:
        assert stored == 0


def test_a_fault_of_the_rate_limit_counter_is_a_plain_503(lab: Lab) -> None:
    lab.fail("findAndModify", 0, {"closeConnection": True}, app="fhir-server-rate-limits")
    response = lab.api.get("/PractitionerRole/R00000012-G")
    if response.status_code != 200:  # in replica-set mode the driver retries the write itself
        assert_unavailable_answer(response)
        assert response.json()["issue"][0]["diagnostics"] == Msg.DB_UNAVAILABLE.value.text


def test_an_idempotency_key_replays_the_first_answer(lab: Lab) -> None:
    role, _ = local_role()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = lab.api.post("/PractitionerRole", role, headers=key)
    again = lab.api.post("/PractitionerRole", role, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert all(again.headers[h] == first.headers[h] for h in ("Location", "ETag", "Last-Modified"))
    # The same document with other white space and key order is the same request.
    reordered = json.dumps(dict(reversed(list(role.items()))), indent=3)
    assert lab.api.post("/PractitionerRole", data=reordered, headers=key).json() == first.json()

    other, _ = local_role()
    refused = lab.api.post("/PractitionerRole", other, headers=key)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["diagnostics"] == Msg.IDEMPOTENCY_KEY_REUSED.value.text

    rejected = lab.api.post("/PractitionerRole", {**role, "practitioner": {"reference": "Practitioner/bad"}},
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert rejected.status_code == 422  # answers other than 503 are replayed too
    invalid = lab.api.post("/PractitionerRole", role, headers={"Idempotency-Key": "two words"})
    assert invalid.status_code == 400


def test_a_replay_while_the_first_request_runs_gets_409(lab: Lab) -> None:
    role, token = local_role()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    # The reservation and the role, after the key's claim, are held for less than the request's lease. (A replay
    # makes no update before it answers.)
    lab.fail("bulkWrite", 0, {"blockConnection": True, "blockTimeMS": 500})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(lab.api.post, "/PractitionerRole", role, headers=key)
        claimed = {"_id": {"$regex": f"\\|{key['Idempotency-Key']}$"}}
        while lab.mongo["idempotency_keys"].find_one(claimed) is None and not first.done():
            time.sleep(0.01)
        replay = lab.api.post("/PractitionerRole", role, headers=key)
        assert replay.status_code == 409, replay.text
        assert replay.json()["issue"][0]["diagnostics"] == Msg.IDEMPOTENCY_IN_PROGRESS.value.text
        assert first.result().status_code in (201, 503)
    lab.off()
    retry = lab.api.post("/PractitionerRole", role, headers=key)
    assert retry.status_code in (200, 201)
    assert len(stored_with(lab, token)) == 1


def test_a_frozen_database_gets_503_and_nothing_answered_so_is_applied_later(lab: Lab) -> None:
    role, token = local_role()
    assert lab.database.process is not None
    group = os.getpgid(lab.database.process.pid)
    os.killpg(group, signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            create = pool.submit(lab.api.create, role)
            read = pool.submit(lab.api.get, "/PractitionerRole/R00000012-G")
            metadata = lab.api.get("/metadata")
            answers = [create.result(), read.result()]
    finally:
        os.killpg(group, signal.SIGCONT)
    assert metadata.status_code == 200  # needs no database
    for answer in answers:
        assert_unavailable_answer(answer)
    time.sleep(2)
    if answers[0].json()["issue"][0]["diagnostics"] == Msg.DB_UNAVAILABLE.value.text:
        assert stored_with(lab, token) == []
    assert lab.api.create(role).status_code in (201, 422)
    assert_no_reservation_without_its_role(lab)


def test_an_id_counter_behind_the_stored_roles_takes_new_ids(lab: Lab) -> None:
    """After a restore the counter may be behind the records: an id already stored is skipped, not a failure."""
    lab.mongo["counters"].update_one({"_id": "practitioner_role"}, {"$set": {"value": 0}})
    highest = max(d["_id"] for d in lab.mongo["practitioner_roles"].find({}, {"_id": 1}))
    answers = [lab.api.create(local_role()[0]) for _ in range(45)]  # past every worker's block of 20
    assert {a.status_code for a in answers} == {201}
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == len(ids)
    assert max(ids) > highest
