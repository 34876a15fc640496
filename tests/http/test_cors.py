"""CORS: the origins of CORS_ORIGINS may call from a browser; a preflight needs no credentials and no
database; the answers expose the headers a FHIR client reads."""

from __future__ import annotations

import os
import signal
import typing as t

import pytest
import requests

from fhir_server.outcome import Msg, issue

from ..support import FHIR_JSON, Server, fresh_role, outcome_messages, start_server

APP = "https://app.example.org"
OTHER = "https://other.example.org"
STRANGER = "https://evil.example.com"
ROLE = "/PractitionerRole/R00000029-P"
EXPOSED = {"ETag", "Location", "Content-Location", "Last-Modified", "X-Request-Id", "X-Correlation-Id", "RateLimit-Limit",
           "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "Retry-After", "WWW-Authenticate"}
REQUEST_HEADERS = ["Authorization", "x-api-key", "userid", "Content-Type", "If-Match", "If-None-Exist", "If-None-Match",
                   "If-Modified-Since", "Prefer", "X-Correlation-Id", "Idempotency-Key"]


@pytest.fixture(scope="module")
def cors_server(own_database, tmp_path_factory) -> t.Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cors-server"), MONGODB_URI=own_database.uri, WEB_CONCURRENCY="1",
                           API_KEY_CACHE_SECONDS="0", CORS_ORIGINS=f"{APP}, {OTHER}/", DB_TIMEOUT_MS="1000")
    yield running
    running.stop()


def names(value: str | None) -> set[str]:
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


def preflight(server: Server, path: str, origin: str, method: str = "POST") -> requests.Response:
    return requests.options(server.base_url + path, timeout=30, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ", ".join(h.lower() for h in REQUEST_HEADERS)})


@pytest.mark.parametrize("path, method", [("/PractitionerRole", "POST"), (ROLE, "PUT"), (ROLE, "GET"), ("/metadata", "GET"),
                                          ("/v1/practitioner-roles", "POST")])
def test_preflight_needs_no_credentials(cors_server, path, method):
    response = preflight(cors_server, path, APP, method)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert method.lower() in names(response.headers["Access-Control-Allow-Methods"])
    assert names(response.headers["Access-Control-Allow-Headers"]) >= {h.lower() for h in REQUEST_HEADERS}
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "RateLimit-Remaining" not in response.headers  # not counted against any key
    assert response.content == b"" and "text/html" not in response.headers.get("Content-Type", "")


def test_preflight_does_not_touch_the_database(own_database, cors_server):
    assert own_database.process is not None
    os.killpg(own_database.process.pid, signal.SIGSTOP)  # any database call would now end in 503
    try:
        response = preflight(cors_server, "/PractitionerRole", APP)
    finally:
        os.killpg(own_database.process.pid, signal.SIGCONT)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP


def test_answers_to_an_allowed_origin_expose_the_fhir_headers(cors_server):
    headers = {**cors_server.headers(), "Origin": OTHER, "Content-Type": FHIR_JSON}
    created = requests.post(cors_server.base_url + "/PractitionerRole", json=fresh_role(), headers=headers, timeout=30)
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == OTHER
    assert {n.lower() for n in EXPOSED} <= names(created.headers["Access-Control-Expose-Headers"])
    assert "origin" in names(created.headers["Vary"])
    read = requests.get(cors_server.base_url + ROLE, headers=headers, timeout=30)
    assert read.status_code == 200 and read.headers["Access-Control-Allow-Origin"] == OTHER


def test_error_answers_carry_cors_headers_too(cors_server):
    # A browser page can read why it was refused only if the refusal allows its origin.
    response = requests.get(cors_server.base_url + ROLE, headers={"Origin": APP}, timeout=30)
    assert response.status_code == 403
    assert outcome_messages(response) == [issue(Msg.FORBIDDEN).diagnostics]
    assert response.headers["Access-Control-Allow-Origin"] == APP


def test_other_origins_get_no_cors_headers(cors_server):
    refused = preflight(cors_server, "/PractitionerRole", STRANGER)
    assert "Access-Control-Allow-Origin" not in refused.headers
    read = requests.get(cors_server.base_url + ROLE, headers={**cors_server.headers(), "Origin": STRANGER}, timeout=30)
    assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read.headers


def test_kept_metadata_answers_follow_the_origin(cors_server):
    # The front keeps /metadata answers: one kept for one origin is not given to another.
    for _ in range(2):
        for origin, allowed in [(APP, APP), (STRANGER, None), (OTHER, OTHER)]:
            response = requests.get(cors_server.base_url + "/metadata", headers={"Origin": origin}, timeout=30)
            assert response.status_code == 200
            assert response.headers.get("Access-Control-Allow-Origin") == allowed


def test_without_cors_origins_no_cors_headers(server):
    read = requests.get(server.base_url + ROLE, headers={**server.headers(), "Origin": APP}, timeout=30)
    assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read.headers
    assert "Access-Control-Allow-Origin" not in preflight(server, "/PractitionerRole", APP).headers
