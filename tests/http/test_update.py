"""PUT /PractitionerRole/{id} (SPEC.md §3.2): If-Match, what may change, the rules, versions, races."""

from __future__ import annotations

import copy
import json
import threading

import pytest

from fhir_server.outcome import Msg, issue

from ..support import DATA, fresh_role, outcome_expressions, outcome_messages, stored_counts

IG_REQUESTS = DATA  # the IG's PUT examples (putPractitionerRoleExample.md)
STATUS_REASON = "http://hl7.org.nz/fhir/StructureDefinition/practitionerRole-status-reason"
MESSAGING = "http://hl7.org.nz/fhir/StructureDefinition/messaging-address"
NOT_UPDATABLE = issue(Msg.NOT_UPDATABLE).diagnostics


def reason(code: str) -> dict:
    return {"url": STATUS_REASON, "valueCodeableConcept": {"coding": [
        {"system": "https://standards.digital.health.nz/ns/hpi-practitioner-role-status-reason-code", "code": code}]}}


@pytest.fixture
def role(api) -> dict:
    """A freshly created role, as read back."""
    response = api.create(fresh_role())
    assert response.status_code == 201
    return response.json()


def updatable_parts_of(example: str) -> dict:
    """The telecom, period and extensions of one of the IG's PUT examples (its role is not loaded)."""
    body = json.loads((IG_REQUESTS / example).read_text())
    return {k: body[k] for k in ("extension", "period", "telecom")}


@pytest.mark.parametrize("example", ["R00000197-A.PUT-update-telecom-and-messaging-address.json",
                                     "R00000197-A.PUT-update-end-date-and-reason.json"])
def test_the_igs_update_examples_make_version_2(api, role, example):
    body = {**role, **updatable_parts_of(example)}
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match='W/"1"')
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["meta"]["versionId"] == "2"
    assert updated["meta"]["lastUpdated"] >= role["meta"]["lastUpdated"]
    assert [e["url"] for e in updated["extension"]] == [e["url"] for e in body["extension"]]
    assert updated["telecom"] == body["telecom"]
    assert updated["period"] == body["period"]
    assert response.headers["ETag"] == 'W/"2"'
    assert response.headers["Content-Location"].endswith(f"/PractitionerRole/{role['id']}/_history/2")
    assert api.get(f"/PractitionerRole/{role['id']}").json() == updated


@pytest.mark.parametrize("if_match", ['W/"1"', '"1"', "1"])
def test_if_match_may_be_weak_quoted_or_bare(api, role, if_match):
    role["telecom"] = [{"system": "phone", "value": "021 555 0101", "use": "work"}]
    response = api.put(f"/PractitionerRole/{role['id']}", role, if_match=if_match)
    assert response.status_code == 200
    assert response.json()["telecom"] == [{"system": "phone", "value": "021 555 0101", "use": "work", "rank": 1}]


def test_missing_if_match_is_428(api, role, mongo):
    before = mongo["practitioner_roles"].find_one({"_id": role["id"]})
    response = api.put(f"/PractitionerRole/{role['id']}", role)
    assert response.status_code == 428
    assert outcome_messages(response) == [issue(Msg.IF_MATCH_REQUIRED).diagnostics]
    assert mongo["practitioner_roles"].find_one({"_id": role["id"]}) == before


@pytest.mark.parametrize("if_match", ["W/\"one\"", "", "*"])
def test_malformed_if_match_is_400(api, role, if_match):
    response = api.put(f"/PractitionerRole/{role['id']}", role, if_match=if_match)
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.IF_MATCH_INVALID).diagnostics]


def test_a_stale_version_is_409_with_em07106(api, role):
    role["telecom"] = [{"system": "phone", "value": "021 555 0102", "use": "work"}]
    assert api.put(f"/PractitionerRole/{role['id']}", role, if_match="1").status_code == 200
    role["telecom"][0]["value"] = "021 555 0103"
    response = api.put(f"/PractitionerRole/{role['id']}", role, if_match="1")
    assert response.status_code == 409
    [found] = response.json()["issue"]
    assert found["details"]["coding"][0]["code"] == "EM07106"
    assert found["details"]["coding"][0]["display"] == "Record version provided is out of date. The record cannot be updated"
    assert found["diagnostics"] == "Resource conflict, the version provided for the resource is not the current version"
    assert api.get(f"/PractitionerRole/{role['id']}").json()["telecom"][0]["value"] == "021 555 0102"


def test_unknown_role_is_404(api, role):
    body = {**role, "id": "R99999999-A"}
    response = api.put("/PractitionerRole/R99999999-A", body, if_match="1")
    assert response.status_code == 404
    assert outcome_messages(response) == [issue(Msg.NOT_FOUND, id="R99999999-A").diagnostics]


def test_an_update_without_id_is_the_igs_422(api, role):
    """SPEC.md §3.2: "A PractitionerRole update must contain: The PractitionerRole id"."""
    body = {k: v for k, v in role.items() if k != "id"}
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match=role["meta"]["versionId"])
    assert response.status_code == 422
    assert outcome_messages(response) == [issue(Msg.ROLE_ID_REQUIRED).diagnostics]
    assert outcome_expressions(response) == ["PractitionerRole.id"]


def test_rank_0_is_one_of_the_contact_rules(api, role):
    body = {**role, "telecom": [{"system": "phone", "value": "1324654788", "use": "work", "rank": 0}]}
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match=role["meta"]["versionId"])
    assert response.status_code == 422
    assert outcome_messages(response) == [issue(Msg.RANK_NOT_POSITIVE).diagnostics]


def test_body_id_must_match_the_url(api, role):
    response = api.put("/PractitionerRole/R00000029-P", role, if_match="1")
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.ID_MISMATCH, url_id="R00000029-P").diagnostics]


@pytest.mark.parametrize("change, element", [
    ({"practitioner": {"reference": "Practitioner/91ZABY"}}, "PractitionerRole.practitioner"),
    ({"organization": {"reference": "Organization/GZZ956-B"}}, "PractitionerRole.organization"),
    ({"location": [{"reference": "Location/FZZ958-K"}]}, "PractitionerRole.location"),
    ({"code": [{"coding": [{"system": "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0", "code": "253111"}]}]},
     "PractitionerRole.code"),
    ({"language": "en-NZ"}, "PractitionerRole.language"),
])
def test_only_contacts_messaging_period_and_reason_may_change(api, role, mongo, change, element):
    before = stored_counts(mongo)
    response = api.put(f"/PractitionerRole/{role['id']}", {**role, **change}, if_match="1")
    assert response.status_code == 422
    assert outcome_messages(response) == [NOT_UPDATABLE]
    assert outcome_expressions(response) == [element]
    assert stored_counts(mongo) == before
    assert api.get(f"/PractitionerRole/{role['id']}").json()["meta"]["versionId"] == "1"


def test_removing_a_reference_is_a_change(api, role):
    body = {k: v for k, v in role.items() if k != "practitioner"}
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match="1")
    assert response.status_code == 422
    assert outcome_expressions(response) == ["PractitionerRole.practitioner"]


def test_the_creator_extension_may_not_change(api, role):
    body = copy.deepcopy(role)
    body["extension"] = [e for e in body["extension"] if not e["url"].endswith("practitionerRole-creator")]
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match="1")
    assert response.status_code == 422
    assert outcome_messages(response) == [NOT_UPDATABLE]


def test_references_may_be_sent_by_dormant_id_or_without_display(api):
    created = api.create(fresh_role(practitioner={"reference": "Practitioner/98ZZQJ"})).json()
    body = {**created, "practitioner": {"reference": "Practitioner/90ZZGJ"}, "organization": {"reference": "Organization/GZZ998-G"},
            "telecom": [{"system": "email", "value": "role@example.nz", "use": "work"}]}
    response = api.put(f"/PractitionerRole/{created['id']}", body, if_match="1")
    assert response.status_code == 200, response.text
    assert response.json()["practitioner"] == created["practitioner"]


def test_the_role_identifier_must_be_sent(api, role):
    response = api.put(f"/PractitionerRole/{role['id']}", {**role, "identifier": []}, if_match="1")
    assert response.status_code == 422
    assert outcome_messages(response) == [issue(Msg.ROLE_IDENTIFIER_REQUIRED).diagnostics]


def test_contact_and_period_rules_apply_as_on_create(api, role, mongo):
    before = stored_counts(mongo)
    body = {**role, "period": {"start": "2024-05-01", "end": "2024-04-01"},
            "telecom": [{"system": "email", "value": "not-an-email", "use": "work"}]}
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match="1")
    assert response.status_code == 422
    assert set(outcome_messages(response)) == {issue(Msg.PERIOD_ORDER).diagnostics, issue(Msg.EMAIL_FORMAT).diagnostics,
                                               issue(Msg.STATUS_REASON_REQUIRED).diagnostics}
    assert stored_counts(mongo) == before


def test_an_end_date_needs_a_status_reason(api, role):
    body = {**role, "period": {"start": "2022-05-05", "end": "2023-01-01"}}
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match="1")
    assert response.status_code == 422
    assert outcome_messages(response) == [issue(Msg.STATUS_REASON_REQUIRED).diagnostics]


def test_end_date_and_reason_can_be_added_and_removed(api, role):
    ended = {**role, "period": {"start": "2022-05-05", "end": "2023-01-01"}, "extension": [*role["extension"], reason("other")]}
    response = api.put(f"/PractitionerRole/{role['id']}", ended, if_match="1")
    assert response.status_code == 200
    assert response.json()["active"] is False
    reopened = {**response.json(), "period": {"start": "2022-05-05"}, "extension": role["extension"]}
    response = api.put(f"/PractitionerRole/{role['id']}", reopened, if_match="2")
    assert response.status_code == 200, response.text
    current = response.json()
    assert current["meta"]["versionId"] == "3" and current["active"] is True
    assert current["period"] == {"start": "2022-05-05"}
    assert STATUS_REASON not in [e["url"] for e in current["extension"]]


def test_an_update_identical_to_the_current_version_makes_no_new_version(api, role, mongo):
    response = api.put(f"/PractitionerRole/{role['id']}", role, if_match="1")
    assert response.status_code == 200
    assert response.json() == role
    assert response.headers["ETag"] == 'W/"1"'
    assert mongo["practitioner_role_versions"].count_documents({"role": role["id"]}) == 1


def test_display_and_text_differences_in_references_and_code_are_not_changes(api, role, mongo):
    body = copy.deepcopy(role)
    body["practitioner"].pop("display", None)
    body["code"][0]["text"] = "Another text"
    body["code"][0]["coding"][0]["display"] = "Another display"
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match="1")
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "1"


def test_moving_the_period_onto_another_role_is_a_duplicate(api, mongo):
    first = api.create(fresh_role(period={"start": "2020-01-01", "end": "2020-12-31"},
                                  extension=[*fresh_role()["extension"], reason("other")])).json()
    second = api.create({**fresh_role(), "code": first["code"], "period": {"start": "2021-01-01"}}).json()
    before = stored_counts(mongo)
    body = {**second, "period": {"start": "2020-06-01"}}
    response = api.put(f"/PractitionerRole/{second['id']}", body, if_match="1")
    assert response.status_code == 422
    assert outcome_messages(response) == [issue(Msg.DUPLICATE).diagnostics]
    assert stored_counts(mongo) == before
    # The role's own period does not stand in its way: starting a day later is fine.
    body = {**second, "period": {"start": "2021-01-02"}}
    assert api.put(f"/PractitionerRole/{second['id']}", body, if_match="1").status_code == 200
    # And the period it gave up is free again.
    third = {**fresh_role(), "code": first["code"], "period": {"start": "2021-01-01", "end": "2021-01-02"},
             "extension": [*fresh_role()["extension"], reason("other")]}
    assert api.create(third).status_code == 201


def test_withdrawing_a_role_as_entered_in_error_frees_its_period(api):
    role = api.create(fresh_role()).json()
    withdrawn = {**role, "period": {"start": "2022-05-05", "end": "2022-05-06"},
                 "extension": [*role["extension"], reason("enteredInError")]}
    assert api.put(f"/PractitionerRole/{role['id']}", withdrawn, if_match="1").status_code == 200
    again = {**fresh_role(), "code": role["code"]}
    assert api.create(again).status_code == 201


def test_concurrent_updates_from_one_version_one_wins(api, role, mongo):
    results: list[int] = []
    ready = threading.Barrier(4)

    def put(value: str) -> None:
        body = {**role, "telecom": [{"system": "phone", "value": value, "use": "work"}]}
        ready.wait()
        results.append(api.put(f"/PractitionerRole/{role['id']}", body, if_match="1").status_code)

    threads = [threading.Thread(target=put, args=(f"021 555 01{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [200, 409, 409, 409]
    assert mongo["practitioner_roles"].find_one({"_id": role["id"]})["vid"] == 2
    assert mongo["practitioner_role_versions"].count_documents({"role": role["id"]}) == 2


def test_delete_is_405_with_the_hpi_rule(api, role):
    response = api.delete(f"/PractitionerRole/{role['id']}")
    assert response.status_code == 405
    assert outcome_messages(response) == [issue(Msg.NOT_DELETABLE).diagnostics]
    assert api.get(f"/PractitionerRole/{role['id']}").status_code == 200


def test_the_loser_of_a_race_between_period_changes_leaves_the_winners_period_held(api, role):
    """Each reservation has its own token: the loser's release frees only its own."""
    ready = threading.Barrier(2)
    results: dict[str, int] = {}

    def put(start: str) -> None:
        ready.wait()
        results[start] = api.put(f"/PractitionerRole/{role['id']}", {**role, "period": {"start": start}}, if_match="1").status_code

    threads = [threading.Thread(target=put, args=(start,)) for start in ("2023-01-01", "2023-02-02")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results.values()) == [200, 409]
    winner = api.get(f"/PractitionerRole/{role['id']}").json()["period"]["start"]
    clash = api.create({**fresh_role(), "code": role["code"], "period": {"start": winner}})
    assert outcome_messages(clash) == [issue(Msg.DUPLICATE).diagnostics]


def test_resending_a_single_day_period_with_an_element_id_is_not_a_duplicate_of_itself(api):
    body = fresh_role(period={"start": "2021-03-03", "end": "2021-03-03"}, extension=[*fresh_role()["extension"], reason("other")])
    role = api.create(body).json()
    response = api.put(f"/PractitionerRole/{role['id']}", {**role, "period": {"id": "p1", **role["period"]}}, if_match="1")
    assert response.status_code == 200, response.text


def test_a_role_without_period_keeps_its_inactive_flag_on_update(api):
    role = api.get("/PractitionerRole/R00000015-C").json()
    body = {**role, "telecom": [{"system": "phone", "value": "021 555 0601", "use": "work"}]}
    response = api.put("/PractitionerRole/R00000015-C", body, if_match=role["meta"]["versionId"])
    assert response.status_code == 200
    assert response.json()["active"] is False
    inactive = api.get("/PractitionerRole", params={"practitioner": "99ZZZS", "active": "false"}).json()["entry"]
    assert [e["resource"]["id"] for e in inactive] == ["R00000015-C"]


@pytest.mark.parametrize("if_match", ["²", "W/\"²\""])
def test_non_ascii_digits_in_if_match_are_400(api, role, if_match):
    response = api.put(f"/PractitionerRole/{role['id']}", role, if_match=if_match.encode().decode("latin-1"))
    assert response.status_code == 400


def test_a_coding_without_system_is_a_change_not_a_crash(api, role):
    body = copy.deepcopy(role)
    body["code"][0]["coding"].append({"code": "x"})
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match="1")
    assert response.status_code == 422
    assert NOT_UPDATABLE in outcome_messages(response)
