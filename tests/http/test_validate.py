"""POST /PractitionerRole/$validate and /PractitionerRole/{id}/$validate: the create and update rules,
nothing stored."""

from __future__ import annotations

import pytest

from fhir_server.outcome import Msg, issue

from ..support import CREATE_EXAMPLE, fresh_role, outcome_messages, stored_counts

OK = issue(Msg.OPERATION_OK, what="No problems found").diagnostics


def parameters(resource: dict, mode: str | None = None) -> dict:
    params = [{"name": "resource", "resource": resource}] + ([{"name": "mode", "valueCode": mode}] if mode else [])
    return {"resourceType": "Parameters", "parameter": params}


def test_a_valid_role_gets_200_with_one_informational_issue(api, mongo):
    before = stored_counts(mongo)
    response = api.post("/PractitionerRole/$validate", fresh_role())
    assert response.status_code == 200
    assert response.json()["issue"] == [{"severity": "information", "code": "informational", "diagnostics": OK}]
    assert stored_counts(mongo) == before


def test_problems_are_listed_with_200_as_a_create_would_find_them(api, mongo):
    before = stored_counts(mongo)
    role = fresh_role(practitioner={"reference": "Practitioner/99ZZZZ"}, telecom=[{"system": "email", "value": "nope", "use": "work"}])
    del role["organization"], role["location"]
    response = api.post("/PractitionerRole/$validate", role)
    assert response.status_code == 200
    assert set(outcome_messages(response)) == set(outcome_messages(api.create(role)))
    assert set(outcome_messages(response)) == {issue(m).diagnostics for m in (
        Msg.ORGANIZATION_OR_FACILITY_REQUIRED, Msg.EMAIL_FORMAT, Msg.PRACTITIONER_INVALID)}
    assert stored_counts(mongo) == before


def test_structural_problems_are_listed_too(api):
    response = api.post("/PractitionerRole/$validate", fresh_role(active="yes"))
    assert response.status_code == 200
    assert response.json()["issue"][0]["expression"] == ["PractitionerRole.active"]


def test_a_duplicate_is_found_without_reserving_anything(api, mongo):
    role = fresh_role()
    assert api.create(role).status_code == 201
    before = stored_counts(mongo)
    response = api.post("/PractitionerRole/$validate", role)
    assert outcome_messages(response) == [issue(Msg.DUPLICATE).diagnostics]
    assert stored_counts(mongo) == before


def test_the_resource_may_come_in_parameters(api):
    response = api.post("/PractitionerRole/$validate", parameters(fresh_role(), "create"))
    assert response.status_code == 200
    assert outcome_messages(response) == [OK]


def test_update_mode_checks_against_the_stored_role(api, mongo):
    created = api.create(fresh_role()).json()
    changed = {**created, "code": CREATE_EXAMPLE["code"]}
    response = api.post(f"/PractitionerRole/{created['id']}/$validate", changed, params={"mode": "update"})
    assert response.status_code == 200
    assert outcome_messages(response) == [issue(Msg.NOT_UPDATABLE).diagnostics]
    allowed = {**created, "telecom": [{"system": "phone", "value": "021 555 0301", "use": "work"}]}
    response = api.post(f"/PractitionerRole/{created['id']}/$validate", parameters(allowed, "update"))
    assert outcome_messages(response) == [OK]
    # Its own period does not make it a duplicate of itself.
    response = api.post(f"/PractitionerRole/{created['id']}/$validate", {**created, "period": {"start": "2021-01-01"}})
    assert outcome_messages(response) == [OK]
    assert api.get(f"/PractitionerRole/{created['id']}").json() == created


def test_update_mode_of_an_unknown_role_is_404(api):
    response = api.post("/PractitionerRole/R99999999-A/$validate", fresh_role(), params={"mode": "update"})
    assert response.status_code == 404


@pytest.mark.parametrize("path, mode", [("/PractitionerRole/$validate", "update"), ("/PractitionerRole/$validate", "delete")])
def test_an_unsupported_mode_is_400(api, path, mode):
    response = api.post(path, fresh_role(), params={"mode": mode})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.VALIDATE_MODE_INVALID, mode=mode).diagnostics]


def test_parameters_without_a_resource_is_400(api):
    response = api.post("/PractitionerRole/$validate", {"resourceType": "Parameters", "parameter": []})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.VALIDATE_RESOURCE_REQUIRED).diagnostics]


def test_unreadable_json_is_400(api):
    assert api.post("/PractitionerRole/$validate", data=b"{").status_code == 400
