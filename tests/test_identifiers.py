"""HPI identifier formats and check characters (SPEC.md §2.2, §2.3, §2.4)."""

from __future__ import annotations

import pytest

from fhir_server import identifiers as ids

# Every sample id SPEC.md §2.2 lists by name (the G00004…G00039 run is covered below as a range).
FACILITY_IDS = [
    "FZZ065-D", "FZZ753-C", "FZZ754-E", "FZZ857-D", "FZZ941-D", "FZZ945-A", "FZZ957-H", "FZZ958-K",
    "FZZ959-A", "FZZ960-H", "FZZ961-K", "FZZ968-B", "FZZ992-K", "FZZ997-J", "FZZ999-B", "FB9964-G",
]
ORGANISATION_IDS = [
    "G00000-E", "G00001-G", "G00002-J", "G00004-B", "G00039-K", "G02328-E", "G03509-C", "G0H578-C",
    "GZZ018-B", "GZZ836-C", "GZZ869-G", "GZZ903-C", "GZZ908-B", "GZZ920-C", "GZZ956-B", "GZZ979-C",
    "GZZ991-D", "GZZ995-A", "GZZ998-G", "GZZ999-J",
]
# SPEC.md §2.3: the 13 sample practitioner-role ids.
ROLE_IDS = [
    "R00000008-F", "R00000009-H", "R00000012-G", "R00000013-J", "R00000015-C", "R00000027-K", "R00000029-P",
    "R00000055-Q", "R00000160-M", "R00000161-P", "R00000162-R", "R00000167-B", "R00000197-A",
]
# SPEC.md §2.4: sample CPNs, including the dormant 90ZZGJ.
CPNS = ["90ZZLP", "99ZZZS", "97ZACB", "97ZABV", "91ZABY", "98ZZQJ", "90ZZGJ", "92ZZRE"]

ORG_CHECK_CHARACTERS = "ABCDEFGHJK"
ROLE_CHECK_CHARACTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
NEVER_ISSUED = ["G00003", "G00017", "G00020", "G00034"]  # remainder 0 (SPEC.md §2.2)


def _validator(value: str):
    return ids.is_valid_organisation_id if value.startswith("G") else ids.is_valid_facility_id


# Organisation and facility ids ------------------------------------------------------------------

@pytest.mark.parametrize("value", ORGANISATION_IDS)
def test_sample_organisation_ids_are_valid(value: str) -> None:
    assert ids.is_valid_organisation_id(value)


@pytest.mark.parametrize("value", FACILITY_IDS)
def test_sample_facility_ids_are_valid(value: str) -> None:
    assert ids.is_valid_facility_id(value)


@pytest.mark.parametrize("value", ORGANISATION_IDS + FACILITY_IDS)
def test_any_other_check_character_is_invalid(value: str) -> None:
    validate = _validator(value)
    for wrong in ORG_CHECK_CHARACTERS.replace(value[-1], ""):
        assert not validate(value[:-1] + wrong), value[:-1] + wrong


@pytest.mark.parametrize(("stem", "check"), [("G00001", "G"), ("GZZ998", "G"), ("FZZ999", "B"), ("FZZ961", "K"),
                                             ("G0H578", "C"), ("FB9964", "G")])
def test_worked_examples_of_the_check_character(stem: str, check: str) -> None:
    assert ids.organisation_check_character(stem) == check


@pytest.mark.parametrize("stem", NEVER_ISSUED)
def test_remainder_zero_has_no_check_character(stem: str) -> None:
    assert ids.organisation_check_character(stem) is None
    assert not any(ids.is_valid_organisation_id(f"{stem}-{c}") for c in ORG_CHECK_CHARACTERS)


def test_the_rest_of_the_g000nn_run_has_check_characters() -> None:
    stems = [f"G{n:05d}" for n in range(40)]
    missing = [s for s in stems if ids.organisation_check_character(s) is None]
    assert missing == NEVER_ISSUED


def test_organisation_and_facility_ids_are_not_interchangeable() -> None:
    assert not ids.is_valid_facility_id("GZZ998-G")
    assert not ids.is_valid_organisation_id("FZZ999-B")


@pytest.mark.parametrize("value", [
    "GZZ998G",     # no hyphen
    "gzz998-g",    # lower case
    "GZZ99-G",     # too short
    "GZZ9988-G",   # too long
    "GZZ99A-G",    # letter in a digit position
    "GIZ998-A",    # I is not in the conversion table
    "GZZ998-L",    # L is not a mod-11 check character
    " GZZ998-G",
    "",
])
def test_malformed_organisation_ids_are_invalid(value: str) -> None:
    assert not ids.is_valid_organisation_id(value)


# Practitioner-role ids --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ROLE_IDS)
def test_sample_role_ids_are_valid(value: str) -> None:
    assert ids.is_valid_role_id(value)


@pytest.mark.parametrize("value", ROLE_IDS)
def test_role_id_with_another_check_letter_is_invalid(value: str) -> None:
    for wrong in ROLE_CHECK_CHARACTERS.replace(value[-1], ""):
        assert not ids.is_valid_role_id(value[:-1] + wrong), value[:-1] + wrong


def test_format_role_id() -> None:
    assert ids.format_role_id(197) == "R00000197-A"


@pytest.mark.parametrize("value", ROLE_IDS)
def test_format_role_id_reproduces_the_samples(value: str) -> None:
    number = ids.role_number(value)
    assert number == int(value[1:9])
    assert ids.format_role_id(number) == value


@pytest.mark.parametrize("number", [0, 1, 99, 12345, 99999999])
def test_issued_role_ids_are_valid_and_round_trip(number: int) -> None:
    role_id = ids.format_role_id(number)
    assert ids.is_valid_role_id(role_id)
    assert ids.role_number(role_id) == number


@pytest.mark.parametrize("value", ["R0000197-A", "R000000197-A", "R00000197A", "r00000197-a", "R00000197-I",
                                   "R00000197-O", "X00000197-A", "R0000019A-A", ""])
def test_malformed_role_ids_are_invalid(value: str) -> None:
    assert not ids.is_valid_role_id(value)


# CPNs: format only (SPEC.md §2.4) ---------------------------------------------------------------

@pytest.mark.parametrize("value", CPNS)
def test_sample_cpns_are_valid(value: str) -> None:
    assert ids.is_valid_cpn(value)


@pytest.mark.parametrize("value", ["9ZZACB", "97ZAC", "97ZACBB", "97zacb", "97ZACI", "97ZACO", "97Z4CB", "97-ACB", ""])
def test_malformed_cpns_are_invalid(value: str) -> None:
    assert not ids.is_valid_cpn(value)
