"""Confidential records (SPEC.md §1.4, fhir_server/service/confidentiality.py): served redacted without
admin access in every read path, older versions included; labelled and changed only with admin; not
found through what they hide."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import pytest
import requests

from fhir_server.auth.assertion import new_client_key, public_jwks
from fhir_server.auth.scopes import HPI_SCOPE_PREFIX
from fhir_server.outcome import Msg

from ..support import FHIR_JSON, PERSON, Server, fresh_cpn, fresh_role, outcome_messages, practitioner, text

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESTRICTED = {"system": CONFIDENTIALITY, "code": "R"}
NORMAL = {"system": CONFIDENTIALITY, "code": "M"}
REDACTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED"}
ROLE_HIDDEN = ("organization", "location", "telecom", "extension")
PERSON_HIDDEN = ("telecom", "address", "extension")
# Every read scope, but no admin.
READER = ("PractitionerRole.r", "PractitionerRole.s", "Practitioner.r", "Practitioner.s", "Organization.r", "Location.r")
TELECOM = [{"system": "phone", "value": "021 555 0199", "use": "work"}]
MORE_TELECOM = [*TELECOM, {"system": "email", "value": "desk@example.org", "use": "work"}]


class Caller:
    """FHIR calls with a token of some scopes only."""

    def __init__(self, server: Server, *scopes: str) -> None:
        self.base = server.base_url
        self.headers = {**server.headers(*scopes), "Content-Type": FHIR_JSON}

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.base + path, params=params, headers=self.headers, timeout=30)

    def post(self, path: str, body: t.Any, **headers: str) -> requests.Response:
        return requests.post(self.base + path, data=json.dumps(body), headers={**self.headers, **headers}, timeout=30)

    def put(self, path: str, body: t.Any, if_match: str) -> requests.Response:
        return requests.put(self.base + path, data=json.dumps(body), headers={**self.headers, "If-Match": if_match}, timeout=30)


@pytest.fixture(scope="module")
def reader(server: Server) -> Caller:
    return Caller(server, *READER)


def labelled(resource: dict[str, t.Any]) -> dict[str, t.Any]:
    return {**resource, "meta": {**resource.get("meta", {}), "security": [RESTRICTED]}}


def assert_redacted(resource: dict[str, t.Any], hidden: tuple[str, ...] = ROLE_HIDDEN) -> None:
    assert not set(hidden) & set(resource), resource
    assert REDACTED in resource["meta"]["security"]


def entries(response: requests.Response) -> list[dict[str, t.Any]]:
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


@pytest.fixture(scope="module")
def secret(api, person) -> dict[str, t.Any]:
    """A role with an organisation, a facility, contacts and extensions, created unlabelled (version 1)
    and labelled by an admin (version 2)."""
    created = api.create(fresh_role(practitioner={"reference": f"Practitioner/{person}"}, telecom=TELECOM))
    assert created.status_code == 201, created.text
    role = created.json()
    assert not {"R", "V"} & {c["code"] for c in role["meta"]["security"]}
    updated = api.put(f"/PractitionerRole/{role['id']}", labelled(role), if_match="1")
    assert updated.status_code == 200, updated.text
    assert RESTRICTED in updated.json()["meta"]["security"]
    return updated.json()


@pytest.fixture(scope="module")
def open_role(api, person) -> dict[str, t.Any]:
    """An unlabelled role of the same practitioner at another organisation, at no facility."""
    body = fresh_role(practitioner={"reference": f"Practitioner/{person}"}, organization={"reference": "Organization/GZZ956-B"})
    del body["location"]
    created = api.create(body)
    assert created.status_code == 201, created.text
    return created.json()


# --- every read path -------------------------------------------------------------------------------------

def test_admin_reads_the_role_whole_and_others_redacted(api, reader, secret):
    assert api.get(f"/PractitionerRole/{secret['id']}").json() == secret
    seen = reader.get(f"/PractitionerRole/{secret['id']}").json()
    assert_redacted(seen)
    assert RESTRICTED in seen["meta"]["security"]
    assert seen["practitioner"] == secret["practitioner"] and seen["code"] == secret["code"]


@pytest.mark.parametrize("vid", ["1", "2"])
def test_vread_redacts_every_version_even_the_unlabelled_one(api, reader, secret, vid):
    whole = api.get(f"/PractitionerRole/{secret['id']}/_history/{vid}").json()
    assert whole["organization"] and whole["location"] and whole["telecom"]
    assert_redacted(reader.get(f"/PractitionerRole/{secret['id']}/_history/{vid}").json())


def test_instance_history_is_redacted(api, reader, secret):
    versions = entries(reader.get(f"/PractitionerRole/{secret['id']}/_history"))
    assert [v["meta"]["versionId"] for v in versions] == ["2", "1"]
    for version in versions:
        assert_redacted(version)
    assert all(v["organization"] for v in entries(api.get(f"/PractitionerRole/{secret['id']}/_history")))


def test_type_history_is_redacted(api, reader, secret):
    newest = api.put(f"/PractitionerRole/{secret['id']}", {**secret, "telecom": MORE_TELECOM}, if_match=secret["meta"]["versionId"])
    assert newest.status_code == 200, newest.text
    found = [v for v in entries(reader.get("/PractitionerRole/_history", _count="20")) if v["id"] == secret["id"]]
    assert [v["meta"]["versionId"] for v in found] == ["3", "2", "1"]
    for version in found:
        assert_redacted(version)


def test_search_serves_the_role_redacted(api, reader, secret, open_role, person):
    found = {r["id"]: r for r in entries(reader.get("/PractitionerRole", practitioner=person))}
    assert_redacted(found[secret["id"]])
    assert found[open_role["id"]]["organization"] == open_role["organization"]
    assert entries(api.get("/PractitionerRole", params={"practitioner": person, "_id": secret["id"]}))[0]["organization"]


def test_include_follows_only_what_the_caller_sees(api, reader, secret, open_role, person):
    params = {"practitioner": person, "_include": "PractitionerRole:organization"}
    included = {f"{r['resourceType']}/{r['id']}" for r in entries(reader.get("/PractitionerRole", **params))}
    assert secret["organization"]["reference"] not in included
    assert open_role["organization"]["reference"] in included
    params["_include"] = "PractitionerRole:location"
    assert not [r for r in entries(reader.get("/PractitionerRole", **params)) if r["resourceType"] == "Location"]
    assert [r for r in entries(api.get("/PractitionerRole", params=params)) if r["resourceType"] == "Location"]


def test_a_bundle_entry_is_served_redacted(reader, secret):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"PractitionerRole/{secret['id']}"}},
        {"request": {"method": "GET", "url": f"PractitionerRole/{secret['id']}/_history/1"}}]}
    response = reader.post("/", bundle)
    assert response.status_code == 200, response.text
    for entry in response.json()["entry"]:
        assert_redacted(entry["resource"])


def test_a_conditional_create_that_finds_the_role_answers_it_redacted(server, secret):
    caller = Caller(server, "PractitionerRole.c", "PractitionerRole.r")
    official = secret["identifier"][0]
    response = caller.post("/PractitionerRole", fresh_role(identifier=[official]),
                           **{"If-None-Exist": f"identifier={official['system']}|{official['value']}"})
    assert response.status_code == 200, response.text
    assert_redacted(response.json())


# --- the plain-JSON API -----------------------------------------------------------------------------------

def cli(server: Server, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "fhir_server", *args], env=server.env, capture_output=True, text=True,
                          timeout=120, check=True).stdout


def test_the_plain_api_read_hides_organisation_facility_and_contacts(server, mongo, person, tmp_path):
    admin = {"x-api-key": server.api_key, "Content-Type": "application/json"}
    body = {"practitionerId": person, "role": "doctor", "organizationName": "Harbour Health", "locationName": "Main Campus",
            "email": "a.doctor@example.com"}
    created = requests.post(server.base_url + "/v1/practitioner-roles", json=body, headers=admin, timeout=30)
    assert created.status_code == 201, created.text
    rid = created.json()["data"]["id"]
    # Such a role cannot be updated over FHIR (it is not an HPI role): labelled where the HPI labels, outside the API.
    mongo["practitioner_roles"].update_one({"_id": rid}, {"$push": {"resource.meta.security": RESTRICTED}})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(public_jwks(new_client_key())))
    out = cli(server, "client", "create", "plain-reader", "--scopes", "PractitionerRole.r PractitionerRole.c", "--jwks", str(jwks))
    key = next(line.split()[1] for line in out.splitlines() if line.startswith("x-api-key"))
    seen = requests.get(f"{server.base_url}/v1/practitioner-roles/{rid}", headers={"x-api-key": key}, timeout=30).json()["data"]
    assert seen["organizationName"] is seen["locationName"] is seen["email"] is None
    whole = requests.get(f"{server.base_url}/v1/practitioner-roles/{rid}", headers=admin, timeout=30).json()["data"]
    assert (whole["organizationName"], whole["locationName"], whole["email"]) == ("Harbour Health", "Main Campus", "a.doctor@example.com")


# --- searches do not tell what is hidden ------------------------------------------------------------------

@pytest.mark.parametrize("param", ["organization", "location"])
def test_a_criterion_on_a_hidden_element_does_not_match_a_confidential_role(api, reader, secret, person, param):
    value = secret[param]["reference"] if param == "organization" else secret[param][0]["reference"]
    response = reader.get("/PractitionerRole", practitioner=person, **{param: value})
    assert secret["id"] not in [r["id"] for r in entries(response)]
    assert response.json()["total"] == 0
    whole = api.get("/PractitionerRole", params={"practitioner": person, param: value})
    assert [r["id"] for r in entries(whole)] == [secret["id"]]


def test_other_criteria_still_match_it(reader, secret, person, open_role):
    response = reader.get("/PractitionerRole", practitioner=person, organization="GZZ956-B")
    assert [r["id"] for r in entries(response)] == [open_role["id"]]
    assert [r["id"] for r in entries(reader.get("/PractitionerRole", practitioner=person, _id=secret["id"]))] == [secret["id"]]


# --- the label ------------------------------------------------------------------------------------------

def test_only_admin_creates_a_labelled_role(server, api, mongo, person):
    caller = Caller(server, "PractitionerRole.c")
    before = mongo["practitioner_roles"].count_documents({})
    body = labelled(fresh_role(practitioner={"reference": f"Practitioner/{person}"}))
    response = caller.post("/PractitionerRole", body)
    assert response.status_code == 403
    assert outcome_messages(response) == [text(Msg.LABEL_ADMIN_ONLY, type="PractitionerRole",
                                                scope=HPI_SCOPE_PREFIX + "PractitionerRole.a")]
    assert mongo["practitioner_roles"].count_documents({}) == before
    assert caller.post("/PractitionerRole/$validate", body).status_code == 403
    created = api.create(body)
    assert created.status_code == 201
    assert created.json()["meta"]["security"] == [RESTRICTED]


def test_an_update_without_admin_of_a_confidential_role_is_refused(server, api, secret):
    current = api.get(f"/PractitionerRole/{secret['id']}").json()
    caller = Caller(server, "PractitionerRole.u", "PractitionerRole.r")
    response = caller.put(f"/PractitionerRole/{secret['id']}", {**current, "telecom": TELECOM}, current["meta"]["versionId"])
    assert response.status_code == 403
    assert outcome_messages(response) == [text(Msg.CONFIDENTIAL_UPDATE, type="PractitionerRole", id=secret["id"],
                                                scope=HPI_SCOPE_PREFIX + "PractitionerRole.a")]
    assert api.get(f"/PractitionerRole/{secret['id']}").json() == current
    validated = requests.post(f"{caller.base}/PractitionerRole/{secret['id']}/$validate", data=json.dumps(current),
                              headers=caller.headers, timeout=30)
    assert validated.status_code == 403


def test_only_admin_sets_or_clears_the_label(server, api, person):
    role = api.create(fresh_role(practitioner={"reference": f"Practitioner/{person}"})).json()
    caller = Caller(server, "PractitionerRole.u")
    response = caller.put(f"/PractitionerRole/{role['id']}", labelled(role), "1")
    assert response.status_code == 403
    assert outcome_messages(response) == [text(Msg.LABEL_ADMIN_ONLY, type="PractitionerRole",
                                                scope=HPI_SCOPE_PREFIX + "PractitionerRole.a")]
    # An update that sends no label keeps the stored one.
    unlabelled = {k: v for k, v in role.items() if k != "meta"}
    assert caller.put(f"/PractitionerRole/{role['id']}", {**unlabelled, "telecom": TELECOM}, "1").status_code == 200
    set_ = api.put(f"/PractitionerRole/{role['id']}", labelled(role), if_match="2")
    assert set_.status_code == 200 and RESTRICTED in set_.json()["meta"]["security"]
    kept = api.put(f"/PractitionerRole/{role['id']}", {**unlabelled, "telecom": MORE_TELECOM}, if_match="3")
    assert kept.status_code == 200 and RESTRICTED in kept.json()["meta"]["security"]
    cleared = api.put(f"/PractitionerRole/{role['id']}", {**role, "meta": {"security": [NORMAL]}}, if_match="4")
    assert cleared.status_code == 200 and cleared.json()["meta"]["security"] == [NORMAL]
    reader = Caller(server, *READER)
    assert reader.get(f"/PractitionerRole/{role['id']}").json()["organization"] == role["organization"]
    assert reader.get(f"/PractitionerRole/{role['id']}/_history/2").json()["organization"] == role["organization"]
    assert_redacted(reader.get(f"/PractitionerRole/{role['id']}/_history/3").json())  # labelled itself


# --- Practitioners -----------------------------------------------------------------------------------------

def contactable(cpn: str) -> dict[str, t.Any]:
    return {**practitioner(cpn), "telecom": TELECOM, "address": [{"city": "Wellington"}],
            "extension": [{"url": "http://hl7.org.nz/fhir/StructureDefinition/nz-ethnicity", "valueCodeableConcept": {"text": "x"}}]}


def test_a_confidential_practitioner_is_served_redacted(server, api, reader, mongo):
    cpn = fresh_cpn()
    body = labelled(contactable(cpn))
    refused = Caller(server, "Practitioner.c").post("/Practitioner", body)
    assert refused.status_code == 403
    assert outcome_messages(refused) == [text(Msg.LABEL_ADMIN_ONLY, type="Practitioner", scope=HPI_SCOPE_PREFIX + "Practitioner.a")]
    assert mongo["reference_resources"].count_documents({"_id": f"Practitioner/{cpn}"}) == 0
    created = api.post("/Practitioner", body)
    assert created.status_code == 201, created.text
    assert api.get(f"/Practitioner/{cpn}").json() == created.json()
    assert_redacted(reader.get(f"/Practitioner/{cpn}").json(), PERSON_HIDDEN)
    assert_redacted(reader.get(f"/Practitioner/{cpn}/_history/1").json(), PERSON_HIDDEN)
    assert_redacted(entries(reader.get("/Practitioner", identifier=f"{PERSON}|{cpn}"))[0], PERSON_HIDDEN)
    role = api.create(fresh_role(practitioner={"reference": f"Practitioner/{cpn}"})).json()
    included = entries(reader.get("/PractitionerRole", practitioner=cpn, _include="PractitionerRole:practitioner"))
    assert [r["id"] for r in included] == [role["id"], cpn]
    assert_redacted(included[1], PERSON_HIDDEN)
    update = Caller(server, "Practitioner.u").put(f"/Practitioner/{cpn}", {**body, "id": cpn, "name": [{"family": "X"}]}, "1")
    assert update.status_code == 403
    assert outcome_messages(update) == [text(Msg.CONFIDENTIAL_UPDATE, type="Practitioner", id=cpn,
                                              scope=HPI_SCOPE_PREFIX + "Practitioner.a")]


def test_only_admin_labels_a_practitioner(server, api):
    cpn = fresh_cpn()
    assert Caller(server, "Practitioner.c").post("/Practitioner", contactable(cpn)).status_code == 201
    body = {**labelled(contactable(cpn)), "id": cpn}
    refused = Caller(server, "Practitioner.u").put(f"/Practitioner/{cpn}", body, "1")
    assert refused.status_code == 403
    assert outcome_messages(refused) == [text(Msg.LABEL_ADMIN_ONLY, type="Practitioner", scope=HPI_SCOPE_PREFIX + "Practitioner.a")]
    assert api.put(f"/Practitioner/{cpn}", body, if_match="1").status_code == 200
    cleared = {**contactable(cpn), "id": cpn}
    assert Caller(server, "Practitioner.u").put(f"/Practitioner/{cpn}", cleared, "2").status_code == 403
    assert api.put(f"/Practitioner/{cpn}", cleared, if_match="2").status_code == 200
    assert Caller(server, *READER).get(f"/Practitioner/{cpn}").json()["telecom"] == TELECOM
