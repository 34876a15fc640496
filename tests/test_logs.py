"""The two log formats (fhir_server/logs.py): a JSON object a line with the record's fields and, for an
error, its stack trace; or text for a terminal."""

from __future__ import annotations

import json
import logging
import sys
from urllib.parse import unquote

import pytest
import requests

from fhir_server import logs
from fhir_server.logs import JsonFormatter, TextFormatter

from .support import start_server


def record(exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("fhir_server.requests", logging.ERROR if exc else logging.INFO, __file__, 1, "request",
                             None, exc_info)
    setattr(made, logs.FIELDS, {"request_id": "req_1", "status": 200, "userid": None})
    return made


def test_json_lines_carry_the_fields_and_an_errors_stack_trace():
    line = json.loads(JsonFormatter().format(record()))
    assert {k: line[k] for k in ("level", "logger", "message", "request_id", "status", "userid")} == {
        "level": "INFO", "logger": "fhir_server.requests", "message": "request", "request_id": "req_1", "status": 200,
        "userid": None}
    assert line["time"].endswith("Z")
    failed = JsonFormatter().format(record(exc=True))
    assert "\n" not in failed
    assert "ValueError: boom" in json.loads(failed)["error"]


def test_what_is_logged_while_a_request_is_handled_names_it():
    plain = logging.LogRecord("fhir_server.app", logging.ERROR, __file__, 1, "Exception on /x [GET]", None, None)
    token = logs.REQUEST_ID.set("req_2")
    try:
        assert json.loads(JsonFormatter().format(plain))["request_id"] == "req_2"
        assert TextFormatter().format(plain).endswith("Exception on /x [GET] request_id=req_2")
    finally:
        logs.REQUEST_ID.reset(token)
    assert "request_id" not in json.loads(JsonFormatter().format(plain))


def test_text_lines_name_the_fields_that_have_a_value():
    text = TextFormatter().format(record())
    assert text.split(" ", 1)[1] == "INFO fhir_server.requests request request_id=req_1 status=200"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError):
        logs.dict_config("xml", "INFO")


def test_a_path_a_client_chooses_cannot_forge_a_text_line_or_a_field(tmp_path):
    server = start_server(tmp_path / "var", LOG_FORMAT="text")
    try:
        forged = "2026-01-01T00:00:00.000Z INFO fhir_server.requests request status=200"
        path = "/x%0A" + forged.replace(" ", "%20") + "%0D%20status=201"
        assert requests.get(server.base_url + path, timeout=10).status_code == 403
        requests.get(server.base_url + "/healthz", timeout=10)  # written after it: the line above is complete
    finally:
        server.stop()
    port = server.base_url.rsplit(":", 1)[1]
    lines = (tmp_path / f"server-{port}.log").read_text(errors="replace").splitlines()
    assert not any(line.startswith("2026-01-01T") for line in lines)
    line = next(line for line in lines if "path=" in line and "/x" in line)
    assert f" path={json.dumps(unquote(path))} status=403 " in line  # one quoted word, then the real status
