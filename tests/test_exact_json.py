"""JSON text with numbers kept digit for digit (fhir_server/exact_json.py)."""

from __future__ import annotations

import decimal

import pytest

from fhir_server import exact_json
from fhir_server.exact_json import Unkept, dumps, loads, number_text, same

KEPT = ["1.50", "0.1", "-0.0", "0.00", "-41.2865", "12345678901234567890.123456789", "0.0000001", "1E+3", "1.50E+3", "0E+2",
        "-0", "123456789012345678901234567890"]


@pytest.mark.parametrize("number", KEPT)
def test_what_is_read_is_written_back_byte_for_byte(number: str) -> None:
    text = f'{{"n":{number},"list":[{number}]}}'
    assert dumps(loads(text), separators=(",", ":")) == text


@pytest.mark.parametrize("value, spelling", [
    (decimal.Decimal("1.50"), "1.50"), (decimal.Decimal("1e-7"), "0.0000001"), (decimal.Decimal("15e2"), "1.5E+3"),
    (decimal.Decimal("-0.000"), "-0.000"),
])
def test_number_text_is_plain_unless_the_exponent_is_positive(value: decimal.Decimal, spelling: str) -> None:
    assert number_text(value) == spelling


def test_numbers_are_never_strings_or_floats() -> None:
    assert dumps({"a": decimal.Decimal("2.50"), "b": 3, "c": True, "d": "2.50"}) == '{"a": 2.50, "b": 3, "c": true, "d": "2.50"}'


def test_an_unkept_number_is_written_as_it_came_so_that_a_second_reading_refuses_it_too() -> None:
    doc = loads('{"n": 1e-7}')
    assert isinstance(doc["n"], Unkept)
    assert isinstance(loads(dumps(doc))["n"], Unkept)


def test_same_tells_precision_and_types_apart() -> None:
    assert same({"a": decimal.Decimal("1.5"), "b": [1]}, {"b": [1], "a": decimal.Decimal("1.5")})
    assert not same(decimal.Decimal("1.5"), decimal.Decimal("1.50"))
    assert not same(1, True)
    assert not same(decimal.Decimal("-0.0"), decimal.Decimal("0.0"))


def test_the_limits_are_decimal128s() -> None:
    assert (exact_json.MAX_DIGITS, exact_json.MIN_EXPONENT, exact_json.MAX_EXPONENT) == (34, -6176, 6111)
