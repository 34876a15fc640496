"""Parsing a request body, and property names that are unsafe to store (fhir_server/validation/json_body.py)."""

from __future__ import annotations

import decimal
import typing as t

import pytest

from fhir_server.exact_json import Unkept
from fhir_server.outcome import Msg
from fhir_server.validation.json_body import MAX_DEPTH, Limits, check_keys, parse_json


def _nested(levels: int) -> t.Any:
    """``{"a": {"a": … 1}}`` with the ``1`` ``levels`` properties below the root."""
    doc: t.Any = 1
    for _ in range(levels):
        doc = {"a": doc}
    return doc


# parse_json ---------------------------------------------------------------------------------------

def test_valid_json_is_parsed_without_issues() -> None:
    doc, issues = parse_json(b'{"resourceType": "PractitionerRole", "active": true, "telecom": [{"rank": 1}]}')
    assert issues == []
    assert doc == {"resourceType": "PractitionerRole", "active": True, "telecom": [{"rank": 1}]}


def test_utf8_text_is_decoded() -> None:
    doc, issues = parse_json('{"text": "Māori"}'.encode())
    assert issues == []
    assert doc == {"text": "Māori"}


@pytest.mark.parametrize("body", [
    pytest.param(b'{"active": ', id="truncated"),
    pytest.param(b"", id="empty"),
    pytest.param(b"{'active': true}", id="single-quotes"),
    pytest.param(b'{"active": true,}', id="trailing-comma"),
    pytest.param(b'{"active": true, "active": false}', id="duplicate-key"),
    pytest.param(b'{"period": {"start": "2020-01-01", "start": "2021-01-01"}}', id="nested-duplicate-key"),
    pytest.param(b'{"rank": NaN}', id="NaN"),
    pytest.param(b'{"rank": Infinity}', id="Infinity"),
    pytest.param(b'{"rank": -Infinity}', id="-Infinity"),
    pytest.param(b'{"text": "\xff"}', id="invalid-utf8"),
    pytest.param(b'{"text": "\xed\xa0\x80"}', id="utf8-surrogate"),
    pytest.param(b'{"text": "\\ud800"}', id="unpaired-surrogate-escape"),
    pytest.param(b'{"\\udfff": 1}', id="unpaired-surrogate-escape-in-a-key"),
])
def test_malformed_json_is_rejected(body: bytes) -> None:
    doc, issues = parse_json(body)
    assert doc is None
    assert [i.msg for i in issues] == [Msg.MALFORMED_JSON]


def test_duplicate_key_issue_names_the_key() -> None:
    _, issues = parse_json(b'{"active": true, "active": false}')
    assert "'active'" in issues[0].diagnostics


def test_nesting_too_deep_for_the_parser_is_rejected() -> None:
    doc, issues = parse_json(b"[" * 100_000 + b"]" * 100_000)
    assert doc is None
    assert [i.msg for i in issues] == [Msg.TOO_DEEP]
    assert dict(issues[0].values)["limit"] == MAX_DEPTH


# check_keys ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("doc", "key", "path"), [
    ({"$where": "1"}, "$where", "PractitionerRole"),
    ({"practitioner": {"$ref": "x"}}, "$ref", "PractitionerRole.practitioner"),
    ({"code": [{"coding.code": "1"}]}, "coding.code", "PractitionerRole.code[0]"),
    ({"location": [{"reference": "Location/FZZ999-B", "a\x00b": 1}]}, "a\x00b", "PractitionerRole.location[0]"),
    ({"telecom": [{}, {"period": {"end\x00": "x"}}]}, "end\x00", "PractitionerRole.telecom[1].period"),
])
def test_unsafe_keys_are_reported_with_their_path(doc: dict, key: str, path: str) -> None:
    issues = check_keys(doc, "PractitionerRole")
    assert [(i.msg, i.expression) for i in issues] == [(Msg.UNSAFE_KEY, path)]
    assert dict(issues[0].values)["key"] == key


def test_every_unsafe_key_is_reported() -> None:
    issues = check_keys({"$a": 1, "b.c": 2, "d": {"$e": 3}}, "PractitionerRole")
    assert [(i.msg, i.expression) for i in issues] == [
        (Msg.UNSAFE_KEY, "PractitionerRole"),
        (Msg.UNSAFE_KEY, "PractitionerRole"),
        (Msg.UNSAFE_KEY, "PractitionerRole.d"),
    ]


@pytest.mark.parametrize("doc", [
    {"a$": 1, "_active": {"id": "x"}, "resourceType": "PractitionerRole"},
    {"text": "values may contain $, . and \x00"},
])
def test_safe_keys_give_no_issues(doc: dict) -> None:
    assert check_keys(doc, "PractitionerRole") == []


def test_nesting_up_to_the_limit_is_allowed() -> None:
    assert check_keys(_nested(MAX_DEPTH), "R") == []


def test_nesting_past_the_limit_is_reported_where_it_starts() -> None:
    issues = check_keys(_nested(MAX_DEPTH + 1), "R")
    assert [(i.msg, i.expression) for i in issues] == [(Msg.TOO_DEEP, "R" + ".a" * (MAX_DEPTH + 1))]


def test_nesting_through_arrays_counts_too() -> None:
    doc: t.Any = 1
    for _ in range(MAX_DEPTH + 1):
        doc = [doc]
    issues = check_keys(doc, "R")
    assert [i.msg for i in issues] == [Msg.TOO_DEEP]
    assert issues[0].expression == "R" + "[0]" * (MAX_DEPTH + 1)


# numbers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["1.50", "0.1", "-0.0", "12345678901234567890.123456789", "-41.2865", "0.0000001",
                                    "1E+3", "1.50E+3", "-0", "9223372036854775808"])
def test_decimals_are_read_with_their_digits(number: str) -> None:
    doc, issues = parse_json(f'{{"n": {number}}}'.encode())
    assert issues == []
    assert isinstance(doc["n"], decimal.Decimal)
    assert doc["n"].as_tuple() == decimal.Decimal(number).as_tuple()


@pytest.mark.parametrize("number", ["0", "1", "-7", "9223372036854775807", "-9223372036854775808"])
def test_integers_that_fit_64_bits_stay_ints(number: str) -> None:
    doc, _ = parse_json(f'{{"n": {number}}}'.encode())
    assert type(doc["n"]) is int and doc["n"] == int(number)


@pytest.mark.parametrize("number, msg", [
    ("1e-999", Msg.NUMBER_SPELLING), ("1.5e3", Msg.NUMBER_SPELLING), ("1E3", Msg.NUMBER_SPELLING), ("1e+3", Msg.NUMBER_SPELLING),
    ("1" * 35, Msg.NUMBER_NOT_STORABLE), ("1." + "1" * 34, Msg.NUMBER_NOT_STORABLE), ("1E+6112", Msg.NUMBER_NOT_STORABLE),
    ("1e99999999999999999999", Msg.NUMBER_NOT_STORABLE), ("9" * 5000, Msg.NUMBER_NOT_STORABLE),
])
def test_numbers_that_would_change_are_reported_by_check_keys_with_their_path(number: str, msg: Msg) -> None:
    doc, issues = parse_json(f'{{"a": [{{"n": {number}}}]}}'.encode())
    assert issues == []
    assert isinstance(doc["a"][0]["n"], Unkept)
    assert [(i.msg, i.expression) for i in check_keys(doc, "R")] == [(msg, "R.a[0].n")]


# sizes ----------------------------------------------------------------------------------------------

def test_an_array_up_to_the_cap_is_allowed_and_past_it_reported_once() -> None:
    limits = Limits(max_array_items=3)
    assert check_keys({"a": [1, 2, 3]}, "R", limits) == []
    issues = check_keys({"a": [{"$bad": 1}] * 4, "b": {"c": [1] * 5}}, "R", limits)
    assert [(i.msg, i.expression) for i in issues] == [(Msg.TOO_MANY_ITEMS, "R.a"), (Msg.TOO_MANY_ITEMS, "R.b.c")]
    assert dict(issues[0].values) == {"element": "R.a", "count": 4, "limit": 3}


def test_a_string_up_to_the_cap_is_allowed_and_past_it_reported() -> None:
    limits = Limits(max_string_length=5)
    assert check_keys({"a": "12345", "b": ["12345"]}, "R", limits) == []
    issues = check_keys({"a": "123456", "b": ["1", "123456"]}, "R", limits)
    assert [(i.msg, i.expression) for i in issues] == [(Msg.STRING_TOO_LONG, "R.a"), (Msg.STRING_TOO_LONG, "R.b[1]")]
    assert dict(issues[0].values) == {"element": "R.a", "length": 6, "limit": 5}


def test_narrative_and_attachment_data_are_bounded_by_the_body_alone() -> None:
    limits = Limits(max_string_length=5)
    assert check_keys({"text": {"div": "x" * 100}, "photo": [{"data": "QUJD" * 100}]}, "R", limits) == []


def test_the_default_caps() -> None:
    assert (Limits().max_array_items, Limits().max_string_length) == (100, 10_000)
