"""HPI identifiers: systems, formats and check characters (SPEC.md §2)."""

from __future__ import annotations

import re

NS = "https://standards.digital.health.nz/ns/"
PERSON_SYSTEM = NS + "hpi-person-id"
ORGANISATION_SYSTEM = NS + "hpi-organisation-id"
FACILITY_SYSTEM = NS + "hpi-facility-id"
ROLE_SYSTEM = NS + "hpi-practitionerrole-id"

# Deprecated URIs the HPI still accepts on input (SPEC.md §2).
_DEPRECATED = "https://standards.digital.health.nz/id/"
SYSTEM_ALIASES = {
    PERSON_SYSTEM: {PERSON_SYSTEM, _DEPRECATED + "hpi-person"},
    ORGANISATION_SYSTEM: {ORGANISATION_SYSTEM, _DEPRECATED + "hpi-organisation"},
    FACILITY_SYSTEM: {FACILITY_SYSTEM, _DEPRECATED + "hpi-facility"},
}

# The MoH "Modulus 11 conversion table": digits are themselves, letters A.. skip I and O (SPEC.md §2.1).
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_VALUE = {**{str(d): d for d in range(10)}, **{c: i + 1 for i, c in enumerate(_LETTERS)}}

_CPN = re.compile(r"[0-9]{2}[A-HJ-NP-Z]{4}")
_ORG = re.compile(r"G[0-9A-HJ-NP-Z]{2}[0-9]{3}-[A-HJK]")
_FACILITY = re.compile(r"F[0-9A-HJ-NP-Z]{2}[0-9]{3}-[A-HJK]")
_ROLE = re.compile(r"R[0-9]{8}-[A-HJ-NP-Z]")


def _weighted_sum(chars: str, weights: range) -> int:
    return sum(_VALUE[c] * w for c, w in zip(chars, weights, strict=False))


def organisation_check_character(stem: str) -> str | None:
    """The mod-11 check character of an organisation or facility id stem such as ``GZZ998``.

    Weights 7..2; a remainder of 0 has no check character, so such a number is never issued.
    """
    r = _weighted_sum(stem, range(7, 1, -1)) % 11
    return _LETTERS[r - 1] if r else None


def role_check_character(stem: str) -> str:
    """The check letter of a practitioner-role id stem ``R`` + 8 digits.

    Inferred from every sample id (SPEC.md §2.3): weights 10..2, mod 34, letter value ≡ r (mod 24).
    """
    r = _weighted_sum(stem, range(10, 1, -1)) % 34
    return _LETTERS[(r - 1) % 24]


def is_valid_cpn(value: str) -> bool:
    """CPNs are checked by format only: their check algorithm is not published (SPEC.md §2.4)."""
    return _CPN.fullmatch(value) is not None


def _has_valid_check(value: str, pattern: re.Pattern[str]) -> bool:
    return pattern.fullmatch(value) is not None and organisation_check_character(value[:6]) == value[7]


def is_valid_organisation_id(value: str) -> bool:
    return _has_valid_check(value, _ORG)


def is_valid_facility_id(value: str) -> bool:
    return _has_valid_check(value, _FACILITY)


def is_valid_role_id(value: str) -> bool:
    return _ROLE.fullmatch(value) is not None and role_check_character(value[:9]) == value[10]


def format_role_id(number: int) -> str:
    """The hpi-practitionerrole-id for sequence number ``number``, e.g. 197 → ``R00000197-A``."""
    stem = f"R{number:08d}"
    return f"{stem}-{role_check_character(stem)}"


def role_number(role_id: str) -> int:
    return int(role_id[1:9])
