"""Contact-point rules (fhir_server/validation/telecom.py, SPEC.md §3.6)."""

from __future__ import annotations

import typing as t

import pytest

from fhir_server.outcome import Msg
from fhir_server.validation.telecom import assign_ranks, check_telecom

TODAY = "2024-06-01"


def _check(*contacts: dict[str, t.Any]) -> list[tuple[Msg, str | None]]:
    return [(i.msg, i.expression) for i in check_telecom(list(contacts), TODAY)]


def test_no_telecom_no_issues() -> None:
    assert check_telecom([], TODAY) == []


# Formats --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1324654788", "021 101010", "+64 4 2321234", "02865865865", "64 20 41212345"])
def test_valid_phone_numbers(value: str) -> None:
    assert _check({"system": "phone", "value": value, "use": "work"}) == []


@pytest.mark.parametrize("value", ["abc", "12", "1234", "021  101010", " 021101010", "021-101-010", "(04) 2321234",
                                   "+", "++64 4 2321234", "123456789012345678901"])
def test_invalid_phone_numbers(value: str) -> None:
    assert _check({"system": "phone", "value": value}) == [(Msg.PHONE_FORMAT, "PractitionerRole.telecom[0].value")]


@pytest.mark.parametrize("system", ["sms", "fax", "pager"])
def test_other_phone_like_systems_are_checked_as_phones(system: str) -> None:
    assert _check({"system": system, "value": "1324654765"}) == []
    assert _check({"system": system, "value": "abc"}) == [(Msg.PHONE_FORMAT, "PractitionerRole.telecom[0].value")]


@pytest.mark.parametrize("value", ["infoooor@infooooor.com", "saranya@test.com", "a@b", "rōpū@hauora.nz",
                                   "a" * 250 + "@b.com"])
def test_valid_email_addresses(value: str) -> None:
    assert _check({"system": "email", "value": value}) == []


@pytest.mark.parametrize("value", ["plain", "@hauora.nz", "kaimahi@", "a@b@c.nz", "kai\nmahi@hauora.nz",
                                   "kaimahi@hauora\x00.nz", "a" * 251 + "@b.com"])
def test_invalid_email_addresses(value: str) -> None:
    assert _check({"system": "email", "value": value}) == [(Msg.EMAIL_FORMAT, "PractitionerRole.telecom[0].value")]


@pytest.mark.parametrize("system", ["url", "other"])
def test_other_systems_have_no_format_rule(system: str) -> None:
    assert _check({"system": system, "value": "90ZZLP@contactme.com"}) == []


def test_each_bad_contact_is_reported_at_its_index() -> None:
    assert _check({"system": "phone", "value": "1324654788"},
                  {"system": "email", "value": "no-at-sign"},
                  {"system": "sms", "value": "abc"}) == [
        (Msg.EMAIL_FORMAT, "PractitionerRole.telecom[1].value"),
        (Msg.PHONE_FORMAT, "PractitionerRole.telecom[2].value"),
    ]


# Value and system -----------------------------------------------------------------------------

@pytest.mark.parametrize("contact", [{"system": "phone"}, {"system": "phone", "value": ""}, {"use": "work"}])
def test_value_missing(contact: dict[str, t.Any]) -> None:
    assert _check(contact) == [(Msg.CONTACT_VALUE_REQUIRED, "PractitionerRole.telecom[0].value")]


def test_system_missing() -> None:
    assert _check({"value": "1324654788", "use": "work"}) == [(Msg.CONTACT_SYSTEM_REQUIRED, "PractitionerRole.telecom[0].system")]


# Contact period -------------------------------------------------------------------------------

@pytest.mark.parametrize("period", [{"start": "2020-01-01"}, {"end": "2030-01-01"},
                                    {"start": "2020-01-01", "end": "2020-01-01"}])
def test_valid_contact_periods(period: dict[str, str]) -> None:
    assert _check({"system": "phone", "value": "1324654788", "period": period}) == []


@pytest.mark.parametrize(("period", "bad"), [
    ({"start": "2020"}, "start"),
    ({"start": "2020-01"}, "start"),
    ({"start": "2020-01-01T09:00:00+13:00"}, "start"),
    ({"start": "2020-01-01", "end": "2021"}, "end"),
    ({"end": "2021-02-29"}, "end"),
])
def test_contact_period_format(period: dict[str, str], bad: str) -> None:
    assert _check({"system": "phone", "value": "1324654788", "period": period}) == [
        (Msg.CONTACT_PERIOD_FORMAT, f"PractitionerRole.telecom[0].period.{bad}")]


def test_contact_period_start_after_end() -> None:
    contact = {"system": "phone", "value": "1324654788", "period": {"start": "2021-01-02", "end": "2021-01-01"}}
    assert _check({"system": "email", "value": "a@b.nz"}, contact) == [
        (Msg.CONTACT_PERIOD_ORDER, "PractitionerRole.telecom[1].period")]


def test_contact_period_is_checked_even_when_the_value_is_bad() -> None:
    contact = {"system": "phone", "value": "abc", "period": {"start": "2021"}}
    assert _check(contact) == [(Msg.PHONE_FORMAT, "PractitionerRole.telecom[0].value"),
                               (Msg.CONTACT_PERIOD_FORMAT, "PractitionerRole.telecom[0].period.start")]


# Duplicates -----------------------------------------------------------------------------------

def test_same_system_value_and_use_is_a_duplicate() -> None:
    contact = {"system": "phone", "value": "1324654788", "use": "work"}
    assert _check(contact, {"system": "email", "value": "a@b.nz"}, dict(contact)) == [
        (Msg.CONTACT_DUPLICATE, "PractitionerRole.telecom[2]")]


@pytest.mark.parametrize(("first", "second"), [
    ("021 101010", "021101010"),        # phone spacing is not significant
    ("Kaimahi@Hauora.nz", "kaimahi@hauora.nz"),
])
def test_duplicates_are_found_after_normalising(first: str, second: str) -> None:
    system = "email" if "@" in first else "phone"
    assert _check({"system": system, "value": first, "use": "work"}, {"system": system, "value": second, "use": "work"}) == [
        (Msg.CONTACT_DUPLICATE, "PractitionerRole.telecom[1]")]


@pytest.mark.parametrize("second", [
    {"system": "phone", "value": "1324654788", "use": "temp"},   # different use
    {"system": "sms", "value": "1324654788", "use": "work"},     # different system
    {"system": "phone", "value": "1324654789", "use": "work"},   # different value
])
def test_different_contacts_are_not_duplicates(second: dict[str, t.Any]) -> None:
    assert _check({"system": "phone", "value": "1324654788", "use": "work"}, second) == []


@pytest.mark.parametrize("period", [{"start": "2000-01-01", "end": "2010-01-01"}, {"end": "2024-05-31"},
                                    {"start": "2024-06-02"}])
def test_a_contact_that_is_not_current_is_not_a_duplicate(period: dict[str, str]) -> None:
    ended = {"system": "phone", "value": "1324654788", "use": "work", "period": period}
    current = {"system": "phone", "value": "1324654788", "use": "work"}
    assert _check(ended, current) == []
    assert _check(current, ended) == []


def test_a_contact_ending_today_is_still_current() -> None:
    ending = {"system": "phone", "value": "1324654788", "use": "work", "period": {"end": TODAY}}
    assert _check(ending, {"system": "phone", "value": "1324654788", "use": "work"}) == [
        (Msg.CONTACT_DUPLICATE, "PractitionerRole.telecom[1]")]


def test_ig_example_with_seven_contacts_has_no_duplicates() -> None:
    telecom = [
        {"system": "phone", "value": "1324654769", "use": "work", "rank": 1},
        {"system": "email", "value": "saranya@test.com", "use": "work", "rank": 2},
        {"system": "url", "value": "90ZZLP@contactme.com", "use": "work", "rank": 1},
        {"system": "sms", "value": "1324654765", "use": "work", "rank": 1},
        {"system": "phone", "value": "1324654767", "use": "work", "rank": 3},
        {"system": "phone", "value": "1324654766", "use": "temp", "rank": 1},
        {"system": "phone", "value": "1324654768", "use": "work", "rank": 2},
    ]
    assert check_telecom(telecom, TODAY) == []


# assign_ranks ---------------------------------------------------------------------------------

def test_unranked_contacts_get_max_plus_one_in_order() -> None:
    telecom = [{"value": "a"}, {"value": "b", "rank": 3}, {"value": "c"}, {"value": "d", "rank": 1}, {"value": "e"}]
    assert [c["rank"] for c in assign_ranks(telecom)] == [4, 3, 5, 1, 6]


def test_with_no_ranks_the_order_gives_the_ranks() -> None:
    assert [c["rank"] for c in assign_ranks([{"value": "a"}, {"value": "b"}, {"value": "c"}])] == [1, 2, 3]


def test_gaps_and_repeated_ranks_are_kept() -> None:
    telecom = [{"value": "a", "rank": 1}, {"value": "b", "rank": 5}, {"value": "c", "rank": 1}]
    assert assign_ranks(telecom) == telecom


def test_assign_ranks_keeps_the_other_elements_and_does_not_modify_its_input() -> None:
    telecom = [{"system": "phone", "value": "1324654788", "use": "work"}]
    ranked = assign_ranks(telecom)
    assert ranked == [{"system": "phone", "value": "1324654788", "use": "work", "rank": 1}]
    assert "rank" not in telecom[0]


def test_assign_ranks_of_nothing() -> None:
    assert assign_ranks([]) == []
