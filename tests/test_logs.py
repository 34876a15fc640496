"""The two log formats (fhir_server/logs.py): a JSON object a line with the record's fields and, for an
error, its stack trace; or text for a terminal."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from fhir_server.logs import FIELDS, JsonFormatter, TextFormatter, dict_config


def record(exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("fhir_server.requests", logging.ERROR if exc else logging.INFO, __file__, 1, "request",
                             None, exc_info)
    setattr(made, FIELDS, {"request_id": "req_1", "status": 200, "userid": None})
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


def test_text_lines_name_the_fields_that_have_a_value():
    text = TextFormatter().format(record())
    assert text.split(" ", 1)[1] == "INFO fhir_server.requests request request_id=req_1 status=200"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError):
        dict_config("xml", "INFO")
