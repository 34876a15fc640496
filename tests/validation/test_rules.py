"""HPI business rules for a create: required elements and the role period (fhir_server/validation/rules.py,
SPEC.md §3.1, §3.5)."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import pytest

from fhir_server.outcome import Msg
from fhir_server.validation.rules import check_required, check_role_period

ROOT = Path(__file__).resolve().parents[2]
CREATE_EXAMPLE = json.loads((ROOT / "tests" / "data" / "create-example.json").read_text(encoding="utf-8"))

STATUS_REASON = "http://hl7.org.nz/fhir/StructureDefinition/practitionerRole-status-reason"
STATUS_REASON_PATH = f"PractitionerRole.extension('{STATUS_REASON}')"


def _example(**changes: t.Any) -> dict[str, t.Any]:
    resource = copy.deepcopy(CREATE_EXAMPLE)
    resource.update(changes)
    return resource


def _without(*elements: str) -> dict[str, t.Any]:
    resource = _example()
    for element in elements:
        del resource[element]
    return resource


def _ended(period: dict[str, str], reason: str | None = "died") -> dict[str, t.Any]:
    resource = _example(period=period)
    if reason:
        resource["extension"].append({"url": STATUS_REASON, "valueCodeableConcept": {"coding": [
            {"system": "https://standards.digital.health.nz/ns/hpi-practitioner-role-status-reason-code", "code": reason}]}})
    return resource


def _found(issues: list) -> list[tuple[Msg, str | None]]:
    return [(i.msg, i.expression) for i in issues]


# check_required -------------------------------------------------------------------------------

def test_the_create_example_has_everything_required() -> None:
    assert check_required(_example()) == []


def test_missing_practitioner() -> None:
    assert _found(check_required(_without("practitioner"))) == [(Msg.PRACTITIONER_REQUIRED, "PractitionerRole.practitioner")]


@pytest.mark.parametrize("empty", [{}, None])
def test_empty_practitioner_counts_as_missing(empty: t.Any) -> None:
    assert _found(check_required(_example(practitioner=empty))) == [
        (Msg.PRACTITIONER_REQUIRED, "PractitionerRole.practitioner")]


@pytest.mark.parametrize("kept", ["organization", "location"])
def test_organization_or_location_is_enough(kept: str) -> None:
    dropped = "location" if kept == "organization" else "organization"
    assert check_required(_without(dropped)) == []


def test_missing_both_organization_and_location() -> None:
    assert _found(check_required(_without("organization", "location"))) == [
        (Msg.ORGANIZATION_OR_FACILITY_REQUIRED, "PractitionerRole.organization")]


def test_empty_location_array_does_not_count() -> None:
    resource = _without("organization")
    resource["location"] = []
    assert _found(check_required(resource)) == [(Msg.ORGANIZATION_OR_FACILITY_REQUIRED, "PractitionerRole.organization")]


@pytest.mark.parametrize("code", [None, []])
def test_missing_code(code: t.Any) -> None:
    resource = _without("code") if code is None else _example(code=code)
    assert _found(check_required(resource)) == [(Msg.ROLE_CODE_REQUIRED, "PractitionerRole.code")]


def test_every_missing_element_is_reported() -> None:
    assert [i.msg for i in check_required({"resourceType": "PractitionerRole"})] == [
        Msg.PRACTITIONER_REQUIRED, Msg.ORGANIZATION_OR_FACILITY_REQUIRED, Msg.ROLE_CODE_REQUIRED]


# check_role_period ----------------------------------------------------------------------------

@pytest.mark.parametrize("period", [None, {}, {"start": "2022-05-05"}])
def test_open_periods_need_no_status_reason(period: dict[str, str] | None) -> None:
    resource = _example(period=period) if period is not None else _without("period")
    assert check_role_period(resource) == []


@pytest.mark.parametrize("period", [
    {"start": "2022-05-05", "end": "2022-05-06"},
    {"start": "2022-05-05", "end": "2022-05-05"},  # start may equal end
    {"end": "2022-05-06"},
])
def test_ended_period_with_status_reason(period: dict[str, str]) -> None:
    assert check_role_period(_ended(period)) == []


@pytest.mark.parametrize("bad", ["2020", "2020-05", "2020-5-5", "05/05/2020", "2020-05-05T10:00:00+12:00",
                                 "2020-05-05T10:00:00Z", "2020-02-30", "20200505", ""])
def test_period_start_must_be_yyyy_mm_dd(bad: str) -> None:
    assert _found(check_role_period(_example(period={"start": bad}))) == [
        (Msg.PERIOD_FORMAT, "PractitionerRole.period.start")]


@pytest.mark.parametrize("bad", ["2021", "2021-01-01T00:00:00Z"])
def test_period_end_must_be_yyyy_mm_dd(bad: str) -> None:
    assert _found(check_role_period(_ended({"start": "2020-01-01", "end": bad}))) == [
        (Msg.PERIOD_FORMAT, "PractitionerRole.period.end")]


def test_both_bad_dates_are_reported() -> None:
    assert _found(check_role_period(_ended({"start": "2020", "end": "2021"}))) == [
        (Msg.PERIOD_FORMAT, "PractitionerRole.period.start"),
        (Msg.PERIOD_FORMAT, "PractitionerRole.period.end"),
    ]


def test_start_after_end() -> None:
    assert _found(check_role_period(_ended({"start": "2022-05-06", "end": "2022-05-05"}))) == [
        (Msg.PERIOD_ORDER, "PractitionerRole.period")]


def test_end_without_status_reason() -> None:
    assert _found(check_role_period(_ended({"start": "2022-05-05", "end": "2022-05-06"}, reason=None))) == [
        (Msg.STATUS_REASON_REQUIRED, STATUS_REASON_PATH)]


def test_status_reason_without_end() -> None:
    assert _found(check_role_period(_ended({"start": "2022-05-05"}))) == [
        (Msg.PERIOD_END_REQUIRED, "PractitionerRole.period.end")]


def test_status_reason_without_any_period() -> None:
    resource = _ended({})
    del resource["period"]
    assert _found(check_role_period(resource)) == [(Msg.PERIOD_END_REQUIRED, "PractitionerRole.period.end")]


def test_order_and_status_reason_are_both_reported() -> None:
    assert _found(check_role_period(_ended({"start": "2022-05-06", "end": "2022-05-05"}, reason=None))) == [
        (Msg.PERIOD_ORDER, "PractitionerRole.period"),
        (Msg.STATUS_REASON_REQUIRED, STATUS_REASON_PATH),
    ]


def test_ig_ended_example_passes() -> None:
    resource = json.loads((ROOT / "fhir_server" / "reference_data" / "R00000012-G.json").read_text(encoding="utf-8"))
    assert check_role_period(resource) == []
