"""JSON text whose numbers are kept digit for digit: what a client sends is what is stored and served.

FHIR R4 says a decimal's precision is significant (datatypes.html#decimal: ``1.50`` is not ``1.5``),
so a number with a fraction or an exponent is read as a :class:`decimal.Decimal`, never a float, and
written back from its digits. The store keeps it as BSON Decimal128 (``store/codecs.py``), which holds
a sign, up to 34 significant digits and an exponent from -6176 to 6111 exactly. An integer that fits
a 64-bit BSON integer stays an ``int``; a longer one is a Decimal with exponent 0.

A Decimal is written back in one spelling (:func:`number_text`): plain notation (``-41.2865``,
``0.0000001``, ``-0.0``) when its exponent is 0 or below, else the to-scientific-string of the
General Decimal Arithmetic specification (``1.50E+3``: a whole number whose trailing zeros are
significant). A number written otherwise (``1e-7``, ``1.5e3``), or one Decimal128 cannot hold, is
read as :class:`Unkept` and refused by validation with its FHIRPath, so no number is ever changed
silently.
"""

from __future__ import annotations

import decimal
import json
import typing as t
from dataclasses import dataclass

import simplejson

from .outcome import Msg

#: What BSON Decimal128 holds exactly (IEEE 754-2008 decimal128): significant digits and the range
#: of the exponent of the last digit.
MAX_DIGITS = 34
MIN_EXPONENT = -6176
MAX_EXPONENT = 6111
_INT64 = range(-(2**63), 2**63)
_SHOWN = 40  # characters of a refused number quoted in its message


@dataclass(frozen=True)
class Unkept:
    """A number the server would not keep exactly as written; validation reports it (400)."""

    text: str
    msg: Msg
    spelling: str = ""  # how the server would write it, for NUMBER_SPELLING

    @property
    def shown(self) -> str:
        return _abridged(self.text)


def _abridged(text: str) -> str:
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN // 2]}…{text[-_SHOWN // 2:]}"


def number_text(value: decimal.Decimal) -> str:
    """The one JSON spelling of ``value``; :func:`loads` keeps only numbers written this way."""
    exponent = value.as_tuple().exponent
    return format(value, "f") if isinstance(exponent, int) and exponent <= 0 else str(value)


def _decimal(text: str) -> decimal.Decimal | Unkept:
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:  # an exponent past what Python's decimal can hold
        return Unkept(text, Msg.NUMBER_NOT_STORABLE)
    _, digits, exponent = value.as_tuple()  # JSON has no leading zeros: every digit is significant
    if not isinstance(exponent, int) or len(digits) > MAX_DIGITS or not MIN_EXPONENT <= exponent <= MAX_EXPONENT:
        return Unkept(text, Msg.NUMBER_NOT_STORABLE)
    spelling = number_text(value)
    if spelling != text:
        return Unkept(text, Msg.NUMBER_SPELLING, _abridged(spelling))
    return value


def _integer(text: str) -> int | decimal.Decimal | Unkept:
    if text == "-0":  # an int has no sign of zero; a Decimal keeps it
        return decimal.Decimal(text)
    if len(text) <= 18:  # fits 64 bits whatever the digits: the common case, without a Decimal
        return int(text)
    found = _decimal(text)
    if isinstance(found, decimal.Decimal) and int(found) in _INT64:
        return int(found)
    return found


def loads(text: str, **kwargs: t.Any) -> t.Any:
    """``json.loads`` with numbers read as :func:`_decimal` and :func:`_integer` say."""
    return json.loads(text, parse_float=_decimal, parse_int=_integer, **kwargs)


def _raw_number(value: t.Any) -> simplejson.RawJSON:
    if isinstance(value, decimal.Decimal):
        return simplejson.RawJSON(number_text(value))
    if isinstance(value, Unkept):  # a Bundle entry re-sent to the server, which then refuses it
        return simplejson.RawJSON(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: t.Any, **kwargs: t.Any) -> str:
    """``json.dumps`` that writes a Decimal as a JSON number with exactly its digits (never a string
    and never a float). Takes ``json.dumps``' arguments (``ensure_ascii``, ``indent``, ``separators``)."""
    return simplejson.dumps(value, use_decimal=False, default=_raw_number, **kwargs)


def same(a: t.Any, b: t.Any) -> bool:
    """Whether two JSON values would be written the same: ``1.50`` and ``1.5`` are equal Decimals but
    not the same FHIR decimal, nor is ``1`` the same as ``true``."""
    return dumps(a, sort_keys=True) == dumps(b, sort_keys=True)
