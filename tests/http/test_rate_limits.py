"""Rate limits per API key (fhir_server/http/rate_limits.py): counted in the database, so shared by the
workers of one server and by a second server on the same database; reported in headers and in the
plain-JSON API's meta; 429 past the limit; configurable per key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from fhir_server.cli.common import DEV_RATE_LIMIT
from fhir_server.outcome import Msg
from fhir_server.store.api_keys import ApiKeyStore

from ..support import PERSON, ROOT, Server, fresh_cpn, fresh_role, practitioner, register_client, start_server

ROLE = "/PractitionerRole/R00000012-G"
PLAIN = "/v1/practitioner-roles"


@pytest.fixture(scope="module")
def second_server(database, server: Server, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Server]:
    """Another host, as it were: two more workers on the same database."""
    running = start_server(tmp_path_factory.mktemp("second"), MONGODB_URI=database.uri, MONGODB_DATABASE="fhir_test",
                           WEB_CONCURRENCY="2", API_KEY_CACHE_SECONDS="0", RATE_LIMIT="1000000/hour")
    yield running
    running.stop()


class Caller:
    """A client of these tests: its keys, each with a limit of its own, and one token that goes with any of them."""

    def __init__(self, server: Server, mongo: t.Any) -> None:
        self.mongo = mongo
        self.client = register_client(mongo, "rate-limit test")
        self.token = server.token(credentials=self.client)

    def new_key(self, limit: str | None) -> str:
        return self.new_key_with_id(limit)[1]

    def new_key_with_id(self, limit: str | None) -> tuple[str, str]:
        return ApiKeyStore(self.mongo).create("rate-limit test", limit, self.client.client_id)

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "x-api-key": key, "userid": "99ZZZS"}


@pytest.fixture(scope="module")
def caller(server: Server, mongo) -> Caller:
    return Caller(server, mongo)


def fhir_get(server: Server, caller: Caller, key: str, path: str = ROLE) -> requests.Response:
    return requests.get(server.base_url + path, headers=caller.headers(key), timeout=30)


def plain_post(server: Server, key: str, body: dict[str, t.Any]) -> requests.Response:
    return requests.post(server.base_url + PLAIN, json=body, headers={"x-api-key": key}, timeout=30)


def test_a_limit_of_n_gives_exactly_n_successes_across_workers_and_servers(server: Server, second_server: Server, mongo, api,
                                                                          caller: Caller) -> None:
    key, cpn = caller.new_key("7/hour"), fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    before = mongo["practitioner_roles"].count_documents({})

    def call(i: int) -> tuple[str, requests.Response]:
        if i % 2:
            return "create", plain_post(second_server, key, {"practitionerId": cpn, "role": "consultant"})
        return "read", fhir_get(server, caller, key)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(call, range(30)))
    statuses = [r.status_code for _, r in results]
    assert statuses.count(429) == 23 and statuses.count(200) + statuses.count(201) == 7
    assert mongo["practitioner_roles"].count_documents({}) - before == statuses.count(201)
    for kind, response in results:
        if response.status_code != 429:
            continue
        seconds = int(response.headers["Retry-After"])
        assert 1 <= seconds <= 3600
        assert response.headers["RateLimit-Remaining"] == "0"
        if kind == "read":
            assert response.json()["issue"] == [{"severity": "error", "code": "throttled", "diagnostics":
                                                 Msg.THROTTLED.value.text.format(limit="7 per 1 hour", seconds=seconds)}]
        else:
            body = response.json()
            assert body["error"]["code"] == "TOO_MANY_REQUESTS"
            assert body["meta"]["rateLimitRemaining"] == 0 and body["meta"]["rateLimitTotal"] == 7
            assert body["meta"]["rateLimitReset"] == seconds


def test_a_high_limit_is_taken_in_blocks_and_never_over_admitted(server: Server, second_server: Server, mongo,
                                                                 caller: Caller) -> None:
    # 2000/hour: each process takes 2 counts at once (store/rate_limits.py), so 4 processes on two
    # hosts may hold up to a block each unused; none may admit a request past the limit.
    key_id, key = caller.new_key_with_id("2000/hour")
    hosts = [server, second_server]

    def call(i: int) -> int:
        return requests.get(hosts[i % 2].base_url + f"{PLAIN}/R00000012-G", headers={"x-api-key": key}, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(2100)))
    admitted = statuses.count(404)
    assert statuses.count(429) == 2100 - admitted
    assert 2000 - 4 * 8 <= admitted <= 2000  # up to a block per process and thread left unused
    assert counted(mongo, key_id) >= 2100


def test_a_block_of_counts_serves_many_requests_with_one_count_in_the_database(server: Server, mongo, caller: Caller) -> None:
    key_id, key = caller.new_key_with_id("1000000/hour")  # blocks of 64
    for _ in range(20):
        response = requests.get(server.base_url + f"{PLAIN}/R00000012-G", headers={"x-api-key": key}, timeout=30)
        assert response.status_code == 404
        assert int(response.headers["RateLimit-Remaining"]) < 1000000
    # Each of the server's three workers took at most one block for all 20 requests.
    assert counted(mongo, key_id) in (64, 128, 192)


def test_headers_and_meta_report_the_window_as_it_is_used(server: Server, caller: Caller) -> None:
    key = caller.new_key("3/hour")
    resets = []
    for remaining in (2, 1, 0):
        response = requests.get(server.base_url + f"{PLAIN}/R00000012-G", headers={"x-api-key": key}, timeout=30)
        assert response.status_code == 404  # an answered request counts, whatever its status
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
        assert response.headers["RateLimit-Policy"] == "3;w=3600"
        meta = response.json()["meta"]
        assert (meta["rateLimitTotal"], meta["rateLimitRemaining"]) == (3, remaining)
        assert meta["rateLimitReset"] == int(response.headers["RateLimit-Reset"])
        resets.append(meta["rateLimitReset"])
    assert 3590 <= resets[0] <= 3600 and resets == sorted(resets, reverse=True)
    throttled = fhir_get(server, caller, key)
    assert throttled.status_code == 429
    assert throttled.headers["Content-Type"] == "application/fhir+json; charset=utf-8"


def test_each_key_has_a_window_of_its_own(server: Server, caller: Caller) -> None:
    first, second = caller.new_key("1/hour"), caller.new_key("1/hour")
    assert [fhir_get(server, caller, first).status_code, fhir_get(server, caller, first).status_code] == [200, 429]
    assert fhir_get(server, caller, second).status_code == 200


def bundle_post(server: Server, caller: Caller, key: str, body: dict[str, t.Any]) -> requests.Response:
    return requests.post(server.base_url + "/", json=body, timeout=30,
                         headers={**caller.headers(key), "Content-Type": "application/fhir+json"})


def counted(mongo: t.Any, key_id: str) -> int:
    return sum(d["count"] for d in mongo["rate_limit_counters"].find({"_id": {"$regex": key_id}}))


def test_a_bundle_counts_once_and_each_entry_that_runs_once_more(server: Server, mongo, caller: Caller) -> None:
    key_id, key = caller.new_key_with_id("5/hour")
    batch = {"resourceType": "Bundle", "type": "batch",
             "entry": [{"request": {"method": "GET", "url": ROLE.lstrip("/")}} for _ in range(6)]}
    response = bundle_post(server, caller, key, batch)
    assert response.status_code == 200
    entries = response.json()["entry"]
    # The Bundle is the first request, four entries fit, the fifth is refused and the sixth is not run.
    assert [e["response"]["status"] for e in entries] == ["200 OK"] * 4 + ["429 Too Many Requests"] * 2
    for throttled in entries[4:]:
        assert [i["code"] for i in throttled["response"]["outcome"]["issue"]] == ["throttled"]
    assert response.headers["RateLimit-Remaining"] == "0"
    assert counted(mongo, key_id) == 6


def test_a_bundle_refused_as_a_whole_costs_one_request(server: Server, mongo, caller: Caller) -> None:
    key_id, key = caller.new_key_with_id("10/hour")
    too_many = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": "metadata"}}] * 101}
    assert [bundle_post(server, caller, key, body).status_code for body in ({"resourceType": "Bundle", "type": "collection"}, too_many)] \
        == [400, 413]
    assert counted(mongo, key_id) == 2


def test_an_entrys_conditional_references_are_part_of_it(server: Server, mongo, api, caller: Caller) -> None:
    key_id, key = caller.new_key_with_id("10/hour")
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    role = fresh_role(practitioner={"reference": f"Practitioner?identifier={PERSON}|{cpn}"})
    response = bundle_post(server, caller, key, {"resourceType": "Bundle", "type": "transaction",
                                         "entry": [{"request": {"method": "POST", "url": "PractitionerRole"}, "resource": role}]})
    assert response.status_code == 200, response.text
    assert counted(mongo, key_id) == 2


def test_a_throttled_entry_rolls_a_transaction_back(server: Server, mongo, caller: Caller) -> None:
    key_id, key = caller.new_key_with_id("2/hour")
    cpns = [fresh_cpn(), fresh_cpn()]
    response = bundle_post(server, caller, key, {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Practitioner"}, "resource": practitioner(cpn)} for cpn in cpns]})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert [i["code"] for i in response.json()["issue"]] == ["processing", "throttled"]
    assert mongo["reference_resources"].count_documents({"resource.id": {"$in": cpns}}) == 0


def test_every_answered_request_with_a_known_key_counts(server: Server, caller: Caller) -> None:
    key = caller.new_key("10/hour")
    answers = [
        requests.get(server.base_url + "/NoSuchType/1", headers=caller.headers(key), timeout=30),
        requests.delete(server.base_url + "/metadata", headers=caller.headers(key), timeout=30),
        requests.get(server.base_url + ROLE, headers={"x-api-key": key}, timeout=30),  # no token
        requests.get(server.base_url + "/v1/nothing-here", headers={"x-api-key": key}, timeout=30),
    ]
    assert [a.status_code for a in answers] == [404, 405, 401, 404]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["9", "8", "7", "6"]
    assert answers[3].json()["meta"]["rateLimitRemaining"] == 6


def test_with_several_limits_the_closest_is_reported_and_all_are_listed(server: Server, caller: Caller) -> None:
    key = caller.new_key("100/minute;3/hour")
    remaining = [fhir_get(server, caller, key).headers["RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    throttled = fhir_get(server, caller, key)
    assert throttled.status_code == 429
    assert throttled.headers["RateLimit-Limit"] == "3"
    assert throttled.headers["RateLimit-Policy"] == "100;w=60, 3;w=3600"
    seconds = int(throttled.headers["Retry-After"])
    assert 3500 < seconds <= 3600
    assert [i["diagnostics"] for i in throttled.json()["issue"]] == [
        Msg.THROTTLED.value.text.format(limit="3 per 1 hour", seconds=seconds)]


def test_a_request_over_one_limit_still_counts_against_the_others(server: Server, mongo, caller: Caller) -> None:
    key_id, key = caller.new_key_with_id("1/minute;100/hour")
    assert [fhir_get(server, caller, key).status_code for _ in range(3)] == [200, 429, 429]
    throttled = fhir_get(server, caller, key)
    assert throttled.headers["RateLimit-Policy"] == "1;w=60, 100;w=3600"
    assert (throttled.headers["RateLimit-Limit"], throttled.headers["RateLimit-Remaining"]) == ("1", "0")
    # Counter ids end in amount/multiple/period: …/1/1/minute, …/100/1/hour.
    counts = {d["_id"].split("/")[-3]: d["count"] for d in mongo["rate_limit_counters"].find({"_id": {"$regex": key_id}})}
    assert counts == {"1": 4, "100": 4}


def test_requests_that_are_not_authenticated_are_not_counted(server: Server, caller: Caller) -> None:
    metadata = requests.get(server.base_url + "/metadata", timeout=30)
    refused = fhir_get(server, caller, "hpi_unknown")
    assert (metadata.status_code, refused.status_code) == (200, 403)
    assert "RateLimit-Limit" not in metadata.headers and "RateLimit-Limit" not in refused.headers


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGODB_URI": server.env["MONGODB_URI"], "MONGODB_DATABASE": "fhir_test", "RATE_LIMIT": "1000000/hour"}
    return subprocess.run([sys.executable, "-m", "fhir_server", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_keys_limit_is_set_with_the_cli(server: Server, caller: Caller) -> None:
    created = cli(server, "client", "key", caller.client.client_id, "--rate-limit", "2/hour")
    assert created.returncode == 0, created.stderr
    key, key_id = re.fullmatch(r"x-api-key  (\S+)  \(key id (\S+)\)", created.stdout.splitlines()[0]).groups()
    assert fhir_get(server, caller, key).headers["RateLimit-Policy"] == "2;w=3600"
    assert "2/hour" in next(line for line in cli(server, "api-key", "list").stdout.splitlines() if line.startswith(key_id))

    changed = cli(server, "api-key", "limit", key_id, "5/minute")
    assert (changed.returncode, changed.stdout.strip()) == (0, f"{key_id} may make 5/minute.")
    assert fhir_get(server, caller, key).headers["RateLimit-Policy"] == "5;w=60"  # API_KEY_CACHE_SECONDS is 0 here

    assert cli(server, "api-key", "limit", key_id, "default").returncode == 0
    assert fhir_get(server, caller, key).headers["RateLimit-Limit"] == "1000000"

    refused = cli(server, "api-key", "limit", key_id, "lots")
    assert refused.returncode == 2
    assert "'lots' is not a rate limit" in refused.stderr
    assert cli(server, "api-key", "limit", "nosuchkey", "5/minute").returncode == 1


def test_the_development_key_has_a_limit_of_its_own_far_above_the_default(server: Server, caller: Caller) -> None:
    # Repeated conformance runs against `make run` spend its key, not RATE_LIMIT (1000000/hour here).
    response = requests.get(server.base_url + ROLE, headers=server.headers(), timeout=30)
    assert response.status_code == 200
    assert response.headers["RateLimit-Limit"] == DEV_RATE_LIMIT.split("/")[0] == "100000000"
    assert response.headers["RateLimit-Policy"] == "100000000;w=3600"
    assert "100000000/hour" in next(line for line in cli(server, "api-key", "list").stdout.splitlines() if "development" in line)
    other = caller.new_key(None)
    assert fhir_get(server, caller, other).headers["RateLimit-Limit"] == "1000000"


def test_after_retry_after_seconds_a_new_window_opens(server: Server, caller: Caller) -> None:
    key = caller.new_key("1 per 3 seconds")
    assert fhir_get(server, caller, key).status_code == 200
    throttled = fhir_get(server, caller, key)
    assert throttled.status_code == 429
    time.sleep(int(throttled.headers["Retry-After"]))
    again = fhir_get(server, caller, key)
    assert again.status_code == 200
    assert (again.headers["RateLimit-Remaining"], again.headers["RateLimit-Policy"]) == ("0", "1;w=3")
    assert 2 <= int(again.headers["RateLimit-Reset"]) <= 3
