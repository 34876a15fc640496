"""What one Bundle may cost (fhir_server/http/bundle.py): the answer's size and the request's time, on
servers of their own with small limits; and a database that refuses transactions, as a standalone
mongod does (code 20 IllegalOperation), injected with MongoDB's failCommand fail point."""

from __future__ import annotations

import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from pymongo import MongoClient

from fhir_server.embedded_db import EmbeddedDatabase
from fhir_server.outcome import Msg, issue
from fhir_server.processes import gunicorn_workers

from ..support import Api, Server, fresh_cpn, outcome_messages, practitioner, start_server
from .test_bundle import bundle, entry

SMALL_ANSWER = 2000  # bytes: a few Practitioners


@pytest.fixture(scope="module")
def faulty_database(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[EmbeddedDatabase]:
    db = EmbeddedDatabase(tmp_path_factory.mktemp("faulty") / "db", test_commands=True)
    db.start()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def small(faulty_database: EmbeddedDatabase, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Server]:
    """One worker that keeps its key (so that the first command after a warm-up is the transaction's)."""
    running = start_server(tmp_path_factory.mktemp("small"), MONGODB_URI=faulty_database.uri, MONGODB_DATABASE="fhir_small",
                           WEB_CONCURRENCY="1", API_KEY_CACHE_SECONDS="600", RATE_LIMIT="1000000/hour",
                           MAX_RESPONSE_BYTES=str(SMALL_ANSWER))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def hurried(database: EmbeddedDatabase, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Server]:
    """A deadline that has passed before any entry runs."""
    running = start_server(tmp_path_factory.mktemp("hurried"), MONGODB_URI=database.uri, MONGODB_DATABASE="fhir_test",
                           WEB_CONCURRENCY="1", API_KEY_CACHE_SECONDS="0", RATE_LIMIT="1000000/hour",
                           REQUEST_DEADLINE_SECONDS="0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def small_db(faulty_database: EmbeddedDatabase, small: Server) -> t.Iterator[t.Any]:
    client: MongoClient[dict[str, t.Any]] = MongoClient(faulty_database.uri)
    yield client
    client.close()


def on(hurried: Server, server: Server) -> Api:
    """The test key (made by the first server on this database) sent to another server."""
    api = Api(server)
    api.base = hurried.base_url
    return api


def stored(db: t.Any, cpns: list[str]) -> set[str]:
    return {d["resource"]["id"] for d in db["reference_resources"].find({"resource.id": {"$in": cpns}})}


def test_a_batch_answer_stops_at_the_size_limit_and_keeps_what_was_done(small: Server, small_db) -> None:
    cpns = [fresh_cpn() for _ in range(12)]
    response = Api(small).post("/", bundle("batch", *[entry("POST", "Practitioner", practitioner(cpn)) for cpn in cpns]))
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    statuses = [e["response"]["status"] for e in entries]
    done = statuses.count("201 Created")
    assert 1 <= done < len(cpns) and statuses == ["201 Created"] * done + ["413 Request Entity Too Large"] * (len(cpns) - done)
    # The entry that passed the limit was done: it says so, without its resource.
    last = entries[done - 1]
    assert "resource" not in last and last["response"]["location"] == f"Practitioner/{cpns[done - 1]}/_history/1"
    assert all("resource" in e for e in entries[:done - 1])
    for index, refused in enumerate(entries[done:], start=done):
        assert [i["diagnostics"] for i in refused["response"]["outcome"]["issue"]] == [
            issue(Msg.RESPONSE_TOO_LARGE, index=index, limit=SMALL_ANSWER).diagnostics]
    assert stored(small_db["fhir_small"], cpns) == set(cpns[:done])


def test_a_transaction_whose_answer_is_too_large_is_rolled_back(small: Server, small_db) -> None:
    cpns = [fresh_cpn() for _ in range(12)]
    response = Api(small).post("/", bundle("transaction", *[entry("POST", "Practitioner", practitioner(cpn)) for cpn in cpns]))
    assert response.status_code == 413, response.text
    assert outcome_messages(response) == [issue(Msg.TRANSACTION_TOO_LARGE, limit=SMALL_ANSWER).diagnostics]
    assert stored(small_db["fhir_small"], cpns) == set()


def test_past_the_deadline_a_batch_runs_nothing_more(hurried: Server, server: Server, mongo) -> None:
    cpns = [fresh_cpn() for _ in range(3)]
    response = on(hurried, server).post("/", bundle("batch", *[entry("POST", "Practitioner", practitioner(cpn)) for cpn in cpns]))
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["503 Service Unavailable"] * 3
    assert [e["response"]["outcome"]["issue"][0]["diagnostics"] for e in entries] == [
        issue(Msg.BUNDLE_DEADLINE, index=i, seconds=0).diagnostics for i in range(3)]
    assert mongo["reference_resources"].count_documents({"resource.id": {"$in": cpns}}) == 0


def test_past_the_deadline_a_transaction_is_rolled_back(hurried: Server, server: Server, mongo) -> None:
    cpn = fresh_cpn()
    response = on(hurried, server).post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn))))
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert outcome_messages(response) == [issue(Msg.TRANSACTION_DEADLINE, seconds=0).diagnostics]
    assert mongo["reference_resources"].count_documents({"resource.id": cpn}) == 0


def test_a_database_that_refuses_transactions_is_answered_at_once(small: Server, small_db) -> None:
    api = Api(small)
    assert api.get("/Practitioner/91ZABY").status_code in (200, 404)  # the worker now holds the key
    cpn = fresh_cpn()
    # What a standalone mongod answers to a transaction's first command.
    small_db.admin.command("configureFailPoint", "failCommand", mode={"times": 1}, data={
        "failCommands": ["find", "insert", "findAndModify", "aggregate"], "appName": "fhir-server",  # the lease is an update
        "errorCode": 20, "errmsg": "Transaction numbers are only allowed on a replica set member or mongos"})
    try:
        response = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn))))
    finally:
        small_db.admin.command("configureFailPoint", "failCommand", mode="off")
    assert response.status_code == 501, response.text
    assert outcome_messages(response) == [issue(Msg.TRANSACTIONS_UNSUPPORTED).diagnostics]
    assert stored(small_db["fhir_small"], [cpn]) == set()
    # A database that has them again (the fail point is spent) takes the same Bundle.
    again = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn))))
    assert again.status_code == 200, again.text
    assert stored(small_db["fhir_small"], [cpn]) == {cpn}


def fail(db: t.Any, commands: list[str], times: int, **data: t.Any) -> None:
    """Fail the server's own commands (not the rate-limit counters', which have an appName of their own)."""
    db.admin.command("configureFailPoint", "failCommand", mode={"times": times},
                     data={"failCommands": commands, "appName": "fhir-server", **data})


def test_a_transaction_aborted_by_a_concurrent_change_is_run_again(small: Server, small_db) -> None:
    api, cpn = Api(small), fresh_cpn()
    assert api.get("/Practitioner/91ZABY").status_code in (200, 404)  # the worker now holds the key
    fail(small_db, ["insert"], 1, errorCode=112, errorLabels=["TransientTransactionError"])  # WriteConflict
    try:
        response = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn))))
    finally:
        small_db.admin.command("configureFailPoint", "failCommand", mode="off")
    assert response.status_code == 200, response.text
    assert small_db["fhir_small"]["reference_resources"].count_documents({"resource.id": cpn}) == 1


def test_a_commit_whose_result_is_lost_is_committed_again(small: Server, small_db) -> None:
    api, cpn = Api(small), fresh_cpn()
    assert api.get("/Practitioner/91ZABY").status_code in (200, 404)
    # The driver retries a commit once by itself; the second loss is the server's to retry.
    fail(small_db, ["commitTransaction"], 2, closeConnection=True)
    try:
        response = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn))))
    finally:
        small_db.admin.command("configureFailPoint", "failCommand", mode="off")
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["status"] == "201 Created"
    assert small_db["fhir_small"]["reference_resources"].count_documents({"resource.id": cpn}) == 1


@pytest.fixture(scope="module")
def brief(faulty_database: EmbeddedDatabase, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Server]:
    """Transactions limited to 4 s, so that a dead worker's lease lapses soon."""
    running = start_server(tmp_path_factory.mktemp("brief"), MONGODB_URI=faulty_database.uri, MONGODB_DATABASE="fhir_brief",
                           WEB_CONCURRENCY="1", API_KEY_CACHE_SECONDS="600", RATE_LIMIT="1000000/hour",
                           REQUEST_DEADLINE_SECONDS="4")
    yield running
    running.stop()


def test_the_records_of_a_worker_killed_mid_transaction_are_writable_again(brief: Server, small_db) -> None:
    api, cpn, other = Api(brief), fresh_cpn(), fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    changed = {**practitioner(cpn), "id": cpn, "name": [{"family": "Changed"}]}
    # FHIR's order runs the update (which holds the record) before the search, which the database holds
    # (its count: _count=0 asks for the total alone).
    held = bundle("transaction", entry("PUT", f"Practitioner/{cpn}", changed, ifMatch='W/"1"'),
                  entry("GET", f"Practitioner?identifier={cpn}&_count=0"), entry("POST", "Practitioner", practitioner(other)))
    fail(small_db, ["aggregate"], 1, blockConnection=True, blockTimeMS=3000)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda: requests.post(brief.base_url + "/", json=held, headers=api.session.headers, timeout=30))
        time.sleep(1.5)  # the update is done and the search is waiting
        for worker in gunicorn_workers(brief.process.pid):
            worker.kill()
        with pytest.raises(requests.ConnectionError):
            pending.result()
    api.session.close()  # its kept-alive connection went with the killed worker: the next request opens a new one
    small_db.admin.command("configureFailPoint", "failCommand", mode="off")
    # Each try is a transaction: refused while the record is held (409, or 503 at its limit), never
    # applied later; the dead worker's transaction is ended once its lease lapses.
    answers = []
    for _ in range(30):
        answer = api.post("/", bundle("transaction", entry("PUT", f"Practitioner/{cpn}", changed, ifMatch='W/"1"')))
        answers.append(answer.status_code)
        if answer.status_code == 200:
            break
    assert answers[-1] == 200 and set(answers[:-1]) <= {409, 503}, answers
    stored_doc = small_db["fhir_brief"]["reference_resources"].find_one({"resource.id": cpn})
    assert stored_doc["resource"]["meta"]["versionId"] == "2" and stored_doc["resource"]["name"] == [{"family": "Changed"}]
    assert small_db["fhir_brief"]["reference_resources"].count_documents({"resource.id": other}) == 0
