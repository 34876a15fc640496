"""The request log (fhir_server/audit.py): one JSON line for every request, allowed or refused, in the
server's error log (stderr), with what was checked of the caller and never a secret."""

from __future__ import annotations

import json
import typing as t
from urllib.parse import urlsplit

import requests

from fhir_server.store.api_keys import digest

from ..support import Server


def log_lines(server: Server) -> list[dict[str, t.Any]]:
    """The request log's lines among everything the session server has written (see start_server)."""
    port = urlsplit(server.base_url).port
    lines = []
    for line in (server.data_dir.parent / f"server-{port}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict) and "request_id" in found:
                lines.append(found)
    return lines


def logged(server: Server, response: requests.Response) -> dict[str, t.Any]:
    """The one line of the request ``response`` answers."""
    (line,) = [x for x in log_lines(server) if x["request_id"] == response.headers["X-Request-Id"] and not x.get("bundle_entry")]
    return line


def call(server: Server, method: str, path: str, headers: dict[str, str], **kw: t.Any) -> requests.Response:
    return requests.request(method, server.base_url + path, headers=headers, timeout=30, **kw)


def test_an_allowed_request_is_one_line_with_the_caller(server):
    headers = server.headers("PractitionerRole.r")
    response = call(server, "GET", "/PractitionerRole/R00000012-G", headers)
    assert response.status_code == 200
    line = logged(server, response)
    assert line["client_id"] == server.credentials.client_id
    assert line["key_id"] == digest(server.api_key)[:12]
    assert {k: line[k] for k in ("userid", "interaction", "method", "path", "status")} == {
        "userid": "99ZZZS", "interaction": "PractitionerRole.read", "method": "GET", "path": "/PractitionerRole/R00000012-G",
        "status": 200}
    assert "time" in line


def test_a_line_carries_the_requests_ids_route_latency_and_database_round_trips(server):
    headers = {**server.headers("PractitionerRole.r"), "X-Correlation-Id": "order-4711"}
    response = call(server, "GET", "/PractitionerRole/R00000012-G?_pretty=true&_elements=id", headers)
    assert response.status_code == 200
    line = logged(server, response)
    assert {k: line[k] for k in ("level", "message", "correlation_id", "method", "route", "status")} == {
        "level": "INFO", "message": "request", "correlation_id": "order-4711", "method": "GET",
        "route": "/PractitionerRole/<role_id>", "status": 200}
    assert isinstance(line["latency_ms"], (int, float)) and line["latency_ms"] >= 0
    assert isinstance(line["db_round_trips"], int) and line["db_round_trips"] >= 1  # the key, the rate limit, the role
    # A public answer of the front's own, kept from the app's, sent no command.
    for _ in range(2):
        health = call(server, "GET", "/healthz", {})
        assert {k: logged(server, health)[k] for k in ("route", "status", "db_round_trips")} == {
            "route": "/healthz", "status": 200, "db_round_trips": 0}


def test_refused_requests_are_logged_with_only_what_was_checked(server):
    good = server.headers("PractitionerRole.r")
    # A scope the token lacks: the caller is known, userid checked.
    scope = call(server, "POST", "/PractitionerRole", good, json={})
    assert scope.status_code == 403
    assert {k: logged(server, scope)[k] for k in ("client_id", "userid", "interaction", "status")} == {
        "client_id": server.credentials.client_id, "userid": "99ZZZS", "interaction": "PractitionerRole.create", "status": 403}
    # No token: the key's client is known, the userid is not checked, so not logged.
    no_token = call(server, "GET", "/PractitionerRole/R00000012-G", {k: v for k, v in good.items() if k != "Authorization"})
    assert no_token.status_code == 401
    line = logged(server, no_token)
    assert (line["client_id"], line["userid"], line["status"]) == (server.credentials.client_id, None, 401)
    # A userid that fails its check is never written.
    garbage = "\u00e9vil\ttext"
    bad_user = call(server, "GET", "/PractitionerRole/R00000012-G", {**good, "userid": garbage.encode().decode("latin-1")})
    assert bad_user.status_code == 401
    assert (logged(server, bad_user)["userid"], logged(server, bad_user)["status"]) == (None, 401)
    # An unknown key: nobody is known.
    unknown = call(server, "GET", "/PractitionerRole/R00000012-G", {**good, "x-api-key": "not-a-key"})
    assert unknown.status_code == 403
    line = logged(server, unknown)
    assert (line["client_id"], line["key_id"], line["userid"], line["status"]) == (None, None, None, 403)
    # A route that does not exist, and a public one.
    missing = call(server, "GET", "/Nothing/here", good)
    assert (logged(server, missing)["status"], logged(server, missing)["path"]) == (404, "/Nothing/here")
    # Public answers, the app's or kept by the front, and what the front refuses before the app sees it.
    for _ in range(2):
        metadata = call(server, "GET", "/metadata", {})
        assert {k: logged(server, metadata)[k] for k in ("method", "path", "status")} == {"method": "GET", "path": "/metadata",
                                                                                          "status": 200}
    too_large = call(server, "POST", "/PractitionerRole", {**good, "Content-Type": "application/fhir+json"}, data=b" " * 70_000)
    assert too_large.status_code == 413
    line = logged(server, too_large)
    assert (line["client_id"], line["userid"], line["path"], line["status"]) == (None, None, "/PractitionerRole", 413)


def test_bundle_entries_are_logged_under_the_bundles_request_id(server):
    body = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": "PractitionerRole/R00000012-G"}}]}
    response = call(server, "POST", "/", {**server.headers(), "Content-Type": "application/fhir+json"}, data=json.dumps(body))
    assert response.status_code == 200
    lines = [x for x in log_lines(server) if x["request_id"] == response.headers["X-Request-Id"]]
    assert [(x.get("bundle_entry", False), x["interaction"], x["status"]) for x in lines] == [
        (True, "PractitionerRole.read", 200), (False, "bundle.batch_or_transaction", 200)]


def test_no_secret_is_ever_logged(server):
    headers = server.headers()
    call(server, "GET", "/PractitionerRole/R00000012-G", headers)
    port = urlsplit(server.base_url).port
    text = (server.data_dir.parent / f"server-{port}.log").read_text(errors="replace")
    token = headers["Authorization"].split(" ", 1)[1]
    assert token not in text
    assert server.api_key not in text
    assert "_elements=id" not in text and "?_pretty" not in text  # no query string, gunicorn's access log is off
