"""POST /PractitionerRole: the 201 answer, and every rule with its exact message (SPEC.md §3.1, §3.5, §3.6)."""

from __future__ import annotations

import copy
import datetime as dt
import re

import pytest

from fhir_server.definitions import PLAIN_ROLE_PROFILE
from fhir_server.identifiers import ROLE_SYSTEM, is_valid_role_id
from fhir_server.outcome import Msg
from fhir_server.validation.fhirpath import extension
from fhir_server.validation.role_elements import CREATOR, STATUS_REASON

from ..support import CREATE_EXAMPLE, fresh_role, outcome_expressions, outcome_messages, stored_counts, text

ENTERED_IN_ERROR = {
    "url": STATUS_REASON,
    "valueCodeableConcept": {"coding": [{"system": "https://standards.digital.health.nz/ns/hpi-practitioner-role-status-reason-code",
                                         "code": "enteredInError", "display": "Entered in error"}]},
}


HPI = "http://hl7.org.nz/fhir/StructureDefinition/HPIPractitionerRole"
NZ_ROLE = "http://hl7.org.nz/fhir/StructureDefinition/NzPractitionerRole"
KNOWN = f"{HPI}, {NZ_ROLE}, {PLAIN_ROLE_PROFILE}"  # every PractitionerRole profile of profiles/


def test_ig_create_example_gets_201_then_duplicate(api, mongo):
    first = api.create(CREATE_EXAMPLE)
    assert first.status_code == 201, first.text
    second = api.create(CREATE_EXAMPLE)
    assert second.status_code == 422
    assert outcome_messages(second) == ["Resource validation error: duplicate"] == [text(Msg.DUPLICATE)]
    assert second.json()["issue"][0]["details"]["coding"][0]["code"] == "EM07201"
    assert mongo["practitioner_roles"].count_documents({"resource.practitioner.reference": "Practitioner/97ZACB",
                                                        "resource.code.coding.code": "253314"}) == 1


def test_201_carries_the_stored_resource_and_its_version(api, mongo, server):
    sent = fresh_role(telecom=[{"system": "phone", "value": "021 101010", "use": "work", "rank": 3},
                               {"system": "email", "value": "role@example.org", "use": "work"}])
    response = api.create(sent)
    assert response.status_code == 201
    body = response.json()
    role_id = body["id"]
    assert is_valid_role_id(role_id)
    assert body["identifier"] == [{"use": "official", "system": ROLE_SYSTEM, "value": role_id,
                                   "assigner": {"reference": "Organization/G00001-G"}}]
    assert body["meta"]["versionId"] == "1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["meta"]["lastUpdated"])
    assert body["active"] is True  # started 2022-05-05, no end
    assert [c["rank"] for c in body["telecom"]] == [3, 4]  # unranked gets the next lowest rank
    assert body["practitioner"] == {"reference": "Practitioner/97ZACB", "display": "mx Ronny J Maunga"}
    assert body["code"] == sent["code"] and body["extension"] == sent["extension"]

    assert response.headers["Location"] == f"{server.base_url}/PractitionerRole/{role_id}/_history/1"
    assert response.headers["ETag"] == 'W/"1"'
    last_modified = dt.datetime.strptime(response.headers["Last-Modified"], "%a, %d %b %Y %H:%M:%S GMT")
    assert last_modified.strftime("%Y-%m-%dT%H:%M:%S") == body["meta"]["lastUpdated"][:19]
    assert response.headers["Content-Type"].startswith("application/fhir+json")

    assert mongo["practitioner_roles"].find_one({"_id": role_id})["resource"] == body
    read = api.get(f"/PractitionerRole/{role_id}")
    assert read.status_code == 200 and read.json() == body and read.headers["ETag"] == 'W/"1"'


@pytest.mark.parametrize("profiles", [[], [HPI], [f"{HPI}|1.4.10"], [NZ_ROLE, HPI]])
def test_a_role_claiming_known_profiles_or_none_is_stored_with_its_claims(api, profiles):
    role = fresh_role(**({"meta": {"profile": profiles}} if profiles else {}))  # an empty meta breaks ele-1
    response = api.create(role)
    assert response.status_code == 201, response.text
    assert response.json()["meta"]["profile"] == (profiles or [HPI])


def test_ids_are_issued_fresh_and_client_ids_ignored(api):
    sent = fresh_role(id="R00000012-G", identifier=[{"use": "official", "system": ROLE_SYSTEM, "value": "R00000012-G"}],
                      meta={"versionId": "7", "profile": ["http://hl7.org.nz/fhir/StructureDefinition/HPIPractitionerRole"]})
    body = api.create(sent).json()
    assert body["id"] != "R00000012-G" and body["meta"]["versionId"] == "1"
    assert [i["value"] for i in body["identifier"]] == [body["id"]]


def test_an_ended_role_is_inactive(api):
    body = api.create(fresh_role(period={"start": "2020-01-01", "end": "2020-06-30"},
                                 extension=[ENTERED_IN_ERROR])).json()
    assert body["active"] is False


def _without(*keys: str) -> dict:
    role = fresh_role()
    for key in keys:
        role.pop(key)
    return role


def _with(**changes: object) -> dict:
    return fresh_role(**changes)


CREATOR_WITHOUT_PERSON = {"url": CREATOR, "extension": [{"url": "organization", "valueReference": {"reference": "Organization/G00001-G"}}]}

# (resource, expected messages in order, expected expressions in order)
REJECTED = {
    "no practitioner": (_without("practitioner"), [text(Msg.PRACTITIONER_REQUIRED)], ["PractitionerRole.practitioner"]),
    "no organization or location": (_without("organization", "location"), [text(Msg.ORGANIZATION_OR_FACILITY_REQUIRED)],
                                    ["PractitionerRole.organization", "PractitionerRole.location"]),
    "no role code": (_without("code"), [text(Msg.ROLE_CODE_REQUIRED)], ["PractitionerRole.code"]),
    "unknown CPN": (_with(practitioner={"reference": "Practitioner/99ZZZZ"}), [text(Msg.PRACTITIONER_INVALID)],
                    ["PractitionerRole.practitioner"]),
    "malformed CPN": (_with(practitioner={"reference": "Practitioner/ABC"}), [text(Msg.PRACTITIONER_INVALID)],
                      ["PractitionerRole.practitioner"]),
    "organization check character": (_with(organization={"reference": "Organization/GZZ998-H"}),
                                     [text(Msg.ORGANIZATION_INVALID)], ["PractitionerRole.organization"]),
    "unknown organization": (_with(organization={"reference": "Organization/G00002-J"}), [text(Msg.ORGANIZATION_INVALID)],
                             ["PractitionerRole.organization"]),
    "facility check character": (_with(location=[{"reference": "Location/FZZ961-A"}]), [text(Msg.FACILITY_INVALID)],
                                 ["PractitionerRole.location[0]"]),
    "role code not in value set": (_with(code=[{"coding": [{"system": "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0",
                                                            "code": "999999"}]}]),
                                   [text(Msg.CODE_NOT_IN_VALUE_SET, code="999999", value_set="https://nzhts.digital.health.nz/fhir/ValueSet/practitioner-role-code")],
                                   ["PractitionerRole.code[0].coding"]),
    "end without status reason": (_with(period={"start": "2022-01-01", "end": "2022-02-01"}), [text(Msg.STATUS_REASON_REQUIRED)],
                                  [extension(STATUS_REASON)]),
    "status reason without end": (_with(extension=[ENTERED_IN_ERROR]), [text(Msg.PERIOD_END_REQUIRED)], ["PractitionerRole.period.end"]),
    "period not yyyy-mm-dd": (_with(period={"start": "2022"}), [text(Msg.PERIOD_FORMAT)], ["PractitionerRole.period.start"]),
    "period start after end": (_with(period={"start": "2022-03-01", "end": "2022-02-01"}, extension=[ENTERED_IN_ERROR]),
                               [text(Msg.PERIOD_ORDER)], ["PractitionerRole.period"]),
    "duplicate contact": (_with(telecom=[{"system": "phone", "value": "021 101010", "use": "work"},
                                         {"system": "phone", "value": "021101010", "use": "work"}]),
                          [text(Msg.CONTACT_DUPLICATE)], ["PractitionerRole.telecom[1]"]),
    "phone format": (_with(telecom=[{"system": "sms", "value": "call me"}]), [text(Msg.PHONE_FORMAT)],
                     ["PractitionerRole.telecom[0].value"]),
    "email format": (_with(telecom=[{"system": "email", "value": "nobody.example.org"}]), [text(Msg.EMAIL_FORMAT)],
                     ["PractitionerRole.telecom[0].value"]),
    "contact period format": (_with(telecom=[{"system": "phone", "value": "1324654788", "period": {"start": "2022-05"}}]),
                              [text(Msg.CONTACT_PERIOD_FORMAT)], ["PractitionerRole.telecom[0].period.start"]),
    "contact period order": (_with(telecom=[{"system": "phone", "value": "1324654788",
                                             "period": {"start": "2022-05-02", "end": "2022-05-01"}}]),
                             [text(Msg.CONTACT_PERIOD_ORDER)], ["PractitionerRole.telecom[0].period"]),
    "contact rank 0": (_with(telecom=[{"system": "phone", "value": "1324654788", "rank": 0}]), [text(Msg.RANK_NOT_POSITIVE)],
                       ["PractitionerRole.telecom[0].rank"]),
    "contact without value": (_with(telecom=[{"system": "phone", "use": "work"}]), [text(Msg.CONTACT_VALUE_REQUIRED)],
                              ["PractitionerRole.telecom[0].value"]),
    "telecom use not work|temp": (_with(telecom=[{"system": "phone", "value": "1324654788", "use": "home"}]),
                                  [text(Msg.CODE_NOT_IN_VALUE_SET, code="home", value_set="https://nzhts.digital.health.nz/fhir/ValueSet/hpi-contact-point-use-code")],
                                  ["PractitionerRole.telecom[0].use"]),
    "prohibited specialty": (_with(specialty=[{"text": "Oncology"}]),
                             [text(Msg.PROHIBITED, element="PractitionerRole.specialty", profile="HpiPractitionerRole")],
                             ["PractitionerRole.specialty"]),
    "two locations": (_with(location=[{"reference": "Location/FZZ961-K"}, {"reference": "Location/FZZ999-B"}]),
                      [text(Msg.TOO_MANY, element="PractitionerRole.location", max=1)], ["PractitionerRole.location"]),
    "unknown profile claimed": (_with(meta={"profile": ["http://example.org/StructureDefinition/OtherRole"]}),
                                [text(Msg.PROFILE_UNKNOWN, profile="http://example.org/StructureDefinition/OtherRole",
                                      type="PractitionerRole", known=KNOWN)], ["PractitionerRole.meta.profile[0]"]),
    "a profile of another type claimed": (_with(meta={"profile": [HPI, "http://hl7.org.nz/fhir/StructureDefinition/HPIPractitioner"]}),
                                          [text(Msg.PROFILE_UNKNOWN, profile="http://hl7.org.nz/fhir/StructureDefinition/HPIPractitioner",
                                                type="PractitionerRole", known=KNOWN)], ["PractitionerRole.meta.profile[1]"]),
    "another version of the profile": (_with(meta={"profile": [f"{HPI}|9.9"]}),
                                       [text(Msg.PROFILE_UNKNOWN, profile=f"{HPI}|9.9", type="PractitionerRole", known=KNOWN)],
                                       ["PractitionerRole.meta.profile[0]"]),
    "claiming the parent profile does not lift the HPI's": (
        _with(meta={"profile": [NZ_ROLE]}, specialty=[{"text": "Oncology"}]),
        [text(Msg.PROHIBITED, element="PractitionerRole.specialty", profile="HpiPractitionerRole")], ["PractitionerRole.specialty"]),
    "practitioner refers to an organisation": (_with(practitioner={"reference": "Organization/GZZ998-G"}),
                                               [text(Msg.REFERENCE_TARGET, element="PractitionerRole.practitioner", allowed="Practitioner"),
                                                text(Msg.PRACTITIONER_INVALID)],
                                               ["PractitionerRole.practitioner", "PractitionerRole.practitioner"]),
    "creator without person": (_with(extension=[CREATOR_WITHOUT_PERSON]),
                               [text(Msg.REQUIRED, element=f"{extension(CREATOR)}.extension('person')")],
                               [f"{extension(CREATOR)}.extension('person')"]),
}


@pytest.mark.parametrize("case", REJECTED, ids=list(REJECTED))
def test_each_rule_has_its_message_and_stores_nothing(api, mongo, case):
    resource, messages, expressions = REJECTED[case]
    before = stored_counts(mongo)
    response = api.create(resource)
    assert response.status_code == 422, response.text
    assert outcome_messages(response) == messages
    assert outcome_expressions(response) == expressions
    assert stored_counts(mongo) == before


def test_every_problem_is_named_at_once(api):
    role = _without("practitioner", "code")
    role["telecom"] = [{"system": "email", "value": "x"}]
    response = api.create(role)
    assert response.status_code == 422
    assert sorted(outcome_messages(response)) == sorted(
        [text(Msg.PRACTITIONER_REQUIRED), text(Msg.ROLE_CODE_REQUIRED), text(Msg.EMAIL_FORMAT)])


def test_hpi_error_codes_ride_along(api):
    issue_ = api.create(_without("practitioner")).json()["issue"][0]
    assert issue_["severity"] == "error" and issue_["code"] == "processing"
    assert issue_["details"]["coding"][0] == {"system": "https://standards.digital.health.nz/ns/hip-operation-outcome-details-code",
                                              "code": "EM07201", "display": "Required value missing"}


class TestDuplicateAndOverlap:
    """SPEC.md §3.5: same CPN, organisation, facility and role code with overlapping periods."""

    @staticmethod
    def _with_period(role, period):
        """``role`` over ``period``; an ended role needs a status reason, "other" being one that reserves."""
        role = copy.deepcopy(role)
        role["period"] = period
        if "end" in period:
            other = copy.deepcopy(ENTERED_IN_ERROR)
            other["valueCodeableConcept"]["coding"][0].update(code="other", display="other")
            role["extension"] = [*CREATE_EXAMPLE["extension"], other]
        return role

    def _pair(self, api, first_period, second_period):
        role = fresh_role()
        assert api.create(self._with_period(role, first_period)).status_code == 201
        return api.create(self._with_period(role, second_period))

    def test_overlapping_periods_are_a_duplicate(self, api):
        response = self._pair(api, {"start": "2020-01-01", "end": "2020-12-31"}, {"start": "2020-06-01", "end": "2021-06-01"})
        assert response.status_code == 422 and outcome_messages(response) == [text(Msg.DUPLICATE)]

    def test_one_starting_the_day_the_other_ends_is_not(self, api):
        assert self._pair(api, {"start": "2020-01-01", "end": "2020-12-31"}, {"start": "2020-12-31"}).status_code == 201

    def test_the_same_single_day_twice_is(self, api):
        response = self._pair(api, {"start": "2020-05-05", "end": "2020-05-05"}, {"start": "2020-05-05", "end": "2020-05-05"})
        assert response.status_code == 422

    def test_open_periods_overlap_everything(self, api):
        response = self._pair(api, {"start": "2020-01-01", "end": "2020-01-02"}, {})
        assert response.status_code == 422

    def test_a_role_entered_in_error_blocks_nothing(self, api):
        role = fresh_role(period={"start": "2020-01-01", "end": "2020-12-31"}, extension=[ENTERED_IN_ERROR])
        assert api.create(role).status_code == 201
        assert api.create(fresh_role(code=role["code"], period={"start": "2020-02-01"})).status_code == 201

    def test_a_dormant_cpn_is_the_live_practitioner(self, api):
        live = fresh_role(practitioner={"reference": "Practitioner/98ZZQJ"})
        assert api.create(live).status_code == 201
        dormant = copy.deepcopy(live)
        dormant["practitioner"] = {"reference": "Practitioner/90ZZGJ"}
        response = api.create(dormant)
        assert response.status_code == 422 and outcome_messages(response) == [text(Msg.DUPLICATE)]

    def test_a_seeded_role_counts(self, api):
        # R00000029-P: 90ZZLP at GZZ998-G / FZZ999-B as 542111, open-ended since 2011-05-06.
        role = copy.deepcopy(CREATE_EXAMPLE)
        role.update(practitioner={"reference": "Practitioner/90ZZLP"}, location=[{"reference": "Location/FZZ999-B"}],
                    code=[{"coding": [{"system": "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0", "code": "542111"}]}])
        assert api.create(role).status_code == 422


def test_a_reservation_left_by_a_process_that_died_blocks_nothing_past_its_lease(api, mongo):
    """A process killed between reserving the business key and inserting the role leaves a period
    held for a role that does not exist; the next create of the role waits out its lease (at most
    half a request's time) or clears it at once if it is over, and stores the role."""
    role = fresh_role()
    role_id = api.create(role).json()["id"]
    mongo["practitioner_roles"].delete_one({"_id": role_id})  # the insert that never happened

    assert api.create(role).status_code == 201
    assert mongo["role_keys"].count_documents({"periods.role": role_id}) == 0


def test_a_reservation_from_before_leases_is_debris_a_minute_after_it_was_made(api, mongo):
    role = fresh_role()
    role_id = api.create(role).json()["id"]
    mongo["practitioner_roles"].delete_one({"_id": role_id})
    minutes_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)
    mongo["role_keys"].update_one({"periods.role": role_id}, {"$set": {"periods.$.at": minutes_ago}, "$unset": {"periods.$.until": ""}})

    assert api.create(role).status_code == 201
    assert mongo["role_keys"].count_documents({"periods.role": role_id}) == 0


def test_a_dormant_cpn_is_stored_as_the_live_one(api):
    body = api.create(fresh_role(practitioner={"reference": "Practitioner/90ZZGJ"})).json()
    assert body["practitioner"]["reference"] == "Practitioner/98ZZQJ"
