"""``/metrics`` (fhir_server/metrics.py, http/probes.py): Prometheus text, summed across the workers,
counting exactly what was sent; guarded by METRICS (public, token, off)."""

from __future__ import annotations

import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from fhir_server.config import Settings
from fhir_server.outcome import Msg

from ..support import (
    FHIR_JSON,
    Server,
    fresh_role,
    outcome_messages,
    register_client,
    start_server,
    text,
)

METRICS_TOKEN = "a-scraper's-secret"
DATABASE = "fhir_metrics"
ROLE = "/PractitionerRole/R00000012-G"


@pytest.fixture(scope="module")
def metered(own_database, tmp_path_factory) -> t.Iterator[Server]:
    # Two workers: whichever answers a scrape, it counts both.
    running = start_server(tmp_path_factory.mktemp("metrics-server"), MONGODB_URI=own_database.uri,
                           MONGODB_DATABASE=DATABASE, WEB_CONCURRENCY="2", API_KEY_CACHE_SECONDS="0",
                           METRICS="token", METRICS_TOKEN=METRICS_TOKEN)
    yield running
    running.stop()


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, as (name, sorted labels) → value, read by the client library's parser."""
    response = requests.get(server.base_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_token(metered):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        response = requests.get(metered.base_url + "/metrics", headers=headers, timeout=10)
        assert response.status_code == 401
        assert outcome_messages(response) == [text(Msg.METRICS_TOKEN_REQUIRED)]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    scrape(metered)


def test_metrics_are_public_in_development_and_closed_in_production_unless_set(server):
    assert requests.get(server.base_url + "/metrics", timeout=10).status_code == 200  # the session server: development
    assert Settings(environment="production", metrics_access="").metrics == "token"
    assert Settings(environment="", mongodb_uri="mongodb://db.example", metrics_access="").metrics == "token"
    assert Settings(environment="production", metrics_access="public").metrics == "public"


def test_requests_are_counted_by_route_method_and_status(metered):
    headers = metered.headers()
    before = scrape(metered)
    sent = 7
    with requests.Session() as session:
        for _ in range(sent):
            assert session.get(metered.base_url + ROLE, headers=headers, timeout=30).status_code == 200
    after = scrape(metered)
    labels = {"route": "/PractitionerRole/<role_id>", "method": "GET", "status": "200"}
    assert value(after, "fhir_server_requests_total", **labels) - value(before, "fhir_server_requests_total", **labels) == sent
    latency = {"route": "/PractitionerRole/<role_id>", "method": "GET"}
    assert (value(after, "fhir_server_request_duration_seconds_count", **latency)
            - value(before, "fhir_server_request_duration_seconds_count", **latency)) == sent
    assert value(after, "fhir_server_db_command_duration_seconds_count", command="find") > value(
        before, "fhir_server_db_command_duration_seconds_count", command="find")


def test_validation_auth_and_rate_limit_refusals_are_counted(metered, own_database):
    headers = {**metered.headers(), "Content-Type": FHIR_JSON}
    before = scrape(metered)
    role = fresh_role()
    del role["practitioner"]
    invalid = requests.post(metered.base_url + "/PractitionerRole", json=role, headers=headers, timeout=30)
    assert invalid.status_code == 422 and text(Msg.PRACTITIONER_REQUIRED) in outcome_messages(invalid)
    unknown_key = requests.get(metered.base_url + ROLE, headers={**headers, "x-api-key": "not-a-key"}, timeout=30)
    assert unknown_key.status_code == 403
    no_token = requests.get(metered.base_url + ROLE, headers={k: v for k, v in headers.items() if k != "Authorization"},
                            timeout=30)
    assert no_token.status_code == 401
    client: MongoClient[dict[str, t.Any]] = MongoClient(own_database.uri)
    try:
        limited = register_client(client[DATABASE], "metrics test", rate_limit="1/hour")
    finally:
        client.close()
    limited_headers = metered.headers(credentials=limited)
    statuses = [requests.get(metered.base_url + ROLE, headers=limited_headers, timeout=30).status_code for _ in range(2)]
    assert statuses == [200, 429]
    after = scrape(metered)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("fhir_server_validation_failures_total", code="PRACTITIONER_REQUIRED") == 1
    assert grew("fhir_server_auth_failures_total", reason="FORBIDDEN") == 1
    assert grew("fhir_server_auth_failures_total", reason="UNAUTHORIZED:invalid_request") == 1
    assert grew("fhir_server_rate_limit_refusals_total") == 1
    assert grew("fhir_server_requests_total", route="/PractitionerRole/<role_id>", method="GET", status="429") == 1


def test_a_made_up_method_makes_no_new_series(metered):
    # Any token is a method to HTTP: one label value each would let any client grow the metrics without end.
    before = scrape(metered)
    for method in ("FOOA", "FOOB", "ZZZ1"):
        assert requests.request(method, metered.base_url + "/metadata", timeout=10).status_code in (403, 405)
    after = scrape(metered)
    methods = {dict(labels).get("method") for name, labels in after if name == "fhir_server_requests_total"}
    assert not methods & {"FOOA", "FOOB", "ZZZ1"}
    labels = {"route": "unmatched", "method": "other", "status": "403"}
    labels_405 = {**labels, "route": "/metadata", "status": "405"}
    counted = sum(value(after, "fhir_server_requests_total", **found) - value(before, "fhir_server_requests_total", **found)
                  for found in (labels, labels_405))
    assert counted == 3


def test_a_key_due_for_renewal_is_looked_up_once_however_many_requests_bring_it(own_database, tmp_path_factory):
    # One worker, its eight threads all busy when the cached key falls due: one thread asks the
    # database again (the key, its client), the others wait for its answer.
    running = start_server(tmp_path_factory.mktemp("renewal-server"), MONGODB_URI=own_database.uri, MONGODB_DATABASE="fhir_renewal",
                           WEB_CONCURRENCY="1", API_KEY_CACHE_SECONDS="2", METRICS="public")
    try:
        headers = running.headers()
        assert requests.get(running.base_url + ROLE, headers=headers, timeout=30).status_code == 200
        with ThreadPoolExecutor(8) as pool:
            for _ in range(3):
                time.sleep(2.2)  # the key's entry (and the signing keys', every 10 s) falls due
                before = requests.get(running.base_url + "/metrics", timeout=10)
                statuses = list(pool.map(lambda _: requests.get(running.base_url + ROLE, headers=headers, timeout=30).status_code,
                                         range(8)))
                after = requests.get(running.base_url + "/metrics", timeout=10)
                assert statuses == [200] * 8
                finds = [value({(s.name, tuple(sorted(s.labels.items()))): s.value for family in
                                text_string_to_metric_families(r.text) for s in family.samples},
                               "fhir_server_db_command_duration_seconds_count", command="find") for r in (before, after)]
                assert finds[1] - finds[0] <= 8 + 3  # the 8 reads, the key and its client once, the signing keys at most once
    finally:
        running.stop()
