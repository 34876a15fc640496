"""Conditional create (If-None-Exist: identifier=…) and identifiers that must stay unique."""

from __future__ import annotations

import threading
import uuid
from urllib.parse import quote

import pytest

from fhir_server.outcome import Msg, issue

from ..support import fresh_role, outcome_messages

CLINIC = "https://clinic.example.nz/practitioner-roles"


def with_identifier(value: str) -> dict:
    return fresh_role(identifier=[{"system": CLINIC, "value": value}])


def test_no_match_creates(api):
    value = uuid.uuid4().hex
    response = api.post("/PractitionerRole", with_identifier(value), headers={"If-None-Exist": f"identifier={CLINIC}|{value}"})
    assert response.status_code == 201
    assert {"system": CLINIC, "value": value} in response.json()["identifier"]


def test_a_match_returns_it_unchanged(api, mongo):
    value = uuid.uuid4().hex
    first = api.post("/PractitionerRole", with_identifier(value), headers={"If-None-Exist": f"identifier={CLINIC}|{value}"}).json()
    count = mongo["practitioner_roles"].count_documents({})
    again = api.post("/PractitionerRole", with_identifier(value), headers={"If-None-Exist": f"identifier={CLINIC}|{value}"})
    assert again.status_code == 200
    assert again.json() == first
    assert again.headers["ETag"] == 'W/"1"'
    assert mongo["practitioner_roles"].count_documents({}) == count


def test_the_condition_may_be_url_encoded(api):
    value = uuid.uuid4().hex
    encoded = f"identifier={quote(CLINIC, safe='')}%7C{value}"
    assert api.post("/PractitionerRole", with_identifier(value), headers={"If-None-Exist": encoded}).status_code == 201
    assert api.post("/PractitionerRole", with_identifier(value), headers={"If-None-Exist": encoded}).status_code == 200


def test_the_condition_must_name_an_identifier_of_the_resource(api):
    response = api.post("/PractitionerRole", fresh_role(), headers={"If-None-Exist": f"identifier={CLINIC}|elsewhere"})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.CONDITION_NOT_IN_RESOURCE, identifier=f"{CLINIC}|elsewhere").diagnostics]


def test_several_matches_are_412(api):
    # Two roles share nothing but their identifier's value, in different systems.
    value = uuid.uuid4().hex
    for system in ("https://a.example.nz/ids", "https://b.example.nz/ids"):
        assert api.create(fresh_role(identifier=[{"system": system, "value": value}])).status_code == 201
    body = fresh_role(identifier=[{"system": "https://c.example.nz/ids", "value": value}])
    response = api.post("/PractitionerRole", body, headers={"If-None-Exist": f"identifier={value}"})
    assert response.status_code == 412
    assert outcome_messages(response) == [issue(Msg.CONDITION_AMBIGUOUS, count=2).diagnostics]


@pytest.mark.parametrize("condition", ["practitioner=97ZACB", "identifier=", "nonsense", "identifier=a&identifier=b"])
def test_other_conditions_are_400(api, condition):
    response = api.post("/PractitionerRole", fresh_role(), headers={"If-None-Exist": condition})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.CONDITION_INVALID).diagnostics]


def test_an_identifier_another_role_has_is_422(api, mongo):
    value = uuid.uuid4().hex
    first = api.create(with_identifier(value)).json()
    held = sum(len(d["periods"]) for d in mongo["role_keys"].find())
    response = api.create(with_identifier(value))
    assert response.status_code == 422
    assert outcome_messages(response) == [issue(Msg.IDENTIFIER_IN_USE, identifier=f"{CLINIC}|{value}",
                                                key=f"PractitionerRole/{first['id']}").diagnostics]
    assert sum(len(d["periods"]) for d in mongo["role_keys"].find()) == held  # its reservation was released


@pytest.mark.parametrize("same_role", [False, True])
def test_concurrent_conditional_creates_store_one(api, mongo, same_role):
    """Whether they race for the identifier only, or also for the same role's period."""
    value = uuid.uuid4().hex
    first = with_identifier(value)
    bodies = [first if same_role else with_identifier(value) for _ in range(8)]
    results: list[tuple[int, str]] = []
    ready = threading.Barrier(len(bodies))

    def create(body: dict) -> None:
        ready.wait()
        response = api.post("/PractitionerRole", body, headers={"If-None-Exist": f"identifier={CLINIC}|{value}"})
        results.append((response.status_code, response.json()["id"]))

    threads = [threading.Thread(target=create, args=(b,)) for b in bodies]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 7 + [201]
    assert len({role_id for _, role_id in results}) == 1
    assert mongo["practitioner_roles"].count_documents({"identifiers": f"{CLINIC}|{value}"}) == 1
