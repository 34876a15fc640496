"""StructureDefinition, ValueSet and CodeSystem over FHIR: read, search by url, $expand and
$validate-code for the role codes, and the CapabilityStatement listing them (fhir_server/http/definitions.py)."""

from __future__ import annotations

import json

import pytest

from fhir_server.definitions import PLAIN_ROLE_PROFILE
from fhir_server.outcome import Msg, issue

from ..support import ROOT, outcome_messages

ROLE_CODES = "https://nzhts.digital.health.nz/fhir/ValueSet/practitioner-role-code"
ANZSCO = "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0"
SNOMED_OCCUPATIONS = "http://snomed.info/sct/223366009"
HPI = "http://hl7.org.nz/fhir/StructureDefinition/HPIPractitionerRole"


def _file(name: str) -> dict:
    return json.loads((ROOT / "profiles" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("kind", "rid", "name"), [
    ("StructureDefinition", "HPIPractitionerRole", "StructureDefinition-HPIPractitionerRole.json"),
    ("StructureDefinition", "practitionerRole-creator", "StructureDefinition-practitionerRole-creator.json"),
    ("ValueSet", "hpi-practitioner-role-1.0", "ValueSet-hpi-practitioner-role-1.0.json"),
    ("CodeSystem", "hpi-practitionerRole-status-reason", "CodeSystem-hpi-practitionerRole-status-reason.json"),
])
def test_read_serves_the_file(api, kind, rid, name):
    response = api.get(f"/{kind}/{rid}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert response.json() == _file(name)


def test_the_profile_has_differential_and_snapshot(api):
    sd = api.get("/StructureDefinition/HPIPractitionerRole").json()
    assert sd["url"] == HPI and sd["derivation"] == "constraint"
    snapshot = {e["id"]: e for e in sd["snapshot"]["element"]}
    assert snapshot["PractitionerRole.specialty"]["max"] == "0"
    assert snapshot["PractitionerRole.code"]["binding"] == {"strength": "required", "valueSet": ROLE_CODES}
    assert len(sd["differential"]["element"]) < len(sd["snapshot"]["element"])


def test_unknown_id_is_404(api):
    response = api.get("/ValueSet/nope")
    assert response.status_code == 404
    assert outcome_messages(response) == [issue(Msg.NOT_FOUND, id="nope").diagnostics]


@pytest.mark.parametrize(("query", "ids"), [
    (f"url={HPI}", ["HPIPractitionerRole"]),
    (f"url={HPI}|1.4.10", ["HPIPractitionerRole"]),
    (f"url={HPI}|0.1", []),
    ("name=hpiprac", ["HPIPractitioner", "HPIPractitionerRole"]),
    ("_id=HPILocation,HPIOrganization", ["HPILocation", "HPIOrganization"]),
])
def test_search_structure_definitions(api, query, ids):
    bundle = api.get(f"/StructureDefinition?{query}").json()
    assert bundle["type"] == "searchset"
    assert sorted(e["resource"]["id"] for e in bundle.get("entry", [])) == ids
    assert bundle["total"] == len(ids)


def test_search_value_set_by_url(api):
    bundle = api.get("/ValueSet", params={"url": ROLE_CODES}).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["hpi-practitioner-role-1.0"]


def test_search_unknown_parameter_is_400_only_when_strict(api):
    assert api.get("/CodeSystem?colour=red").status_code == 200
    strict = api.get("/CodeSystem?colour=red", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert outcome_messages(strict) == [issue(Msg.SEARCH_PARAM_UNKNOWN, name="colour", type="CodeSystem").diagnostics]


def test_expand_the_role_codes(api):
    expanded = api.get("/ValueSet/$expand", params={"url": ROLE_CODES}).json()
    assert expanded["resourceType"] == "ValueSet" and expanded["url"] == ROLE_CODES
    contains = expanded["expansion"]["contains"]
    assert expanded["expansion"]["total"] == len(contains) == 1098
    assert {"system": ANZSCO, "version": "1.2", "code": "253314", "display": "Medical Oncologist"} in contains
    assert sum(c["system"] == SNOMED_OCCUPATIONS for c in contains) == 76


def test_expand_with_filter_and_paging(api):
    page = api.get("/ValueSet/hpi-practitioner-role-1.0/$expand", params={"filter": "ONCOLOG", "count": "1", "offset": "1"}).json()
    everything = api.get("/ValueSet/hpi-practitioner-role-1.0/$expand", params={"filter": "oncolog"}).json()["expansion"]
    assert all("oncolog" in c["display"].lower() for c in everything["contains"])
    assert page["expansion"]["total"] == everything["total"] >= 2
    assert page["expansion"]["contains"] == everything["contains"][1:2]


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("/ValueSet/$expand", {}, 400, issue(Msg.OPERATION_PARAM_REQUIRED, operation="$expand", name="url")),
    ("/ValueSet/$expand", {"url": "http://example.org/vs"}, 404, issue(Msg.CANONICAL_UNKNOWN, type="ValueSet", url="http://example.org/vs")),
    ("/ValueSet/$expand", {"url": ROLE_CODES, "count": "-1"}, 400, issue(Msg.SEARCH_VALUE_INVALID, name="count", value="-1")),
    ("/CodeSystem/$validate-code", {"url": ANZSCO}, 400, issue(Msg.OPERATION_PARAM_REQUIRED, operation="$validate-code", name="code")),
    ("/CodeSystem/$validate-code", {"code": "253314"}, 400, issue(Msg.OPERATION_PARAM_REQUIRED, operation="$validate-code", name="url")),
    ("/CodeSystem/$validate-code", {"url": "http://example.org/cs", "code": "x"}, 404,
     issue(Msg.CANONICAL_UNKNOWN, type="CodeSystem", url="http://example.org/cs")),
])
def test_operation_errors(api, path, params, status, message):
    response = api.get(path, params=params)
    assert response.status_code == status
    assert outcome_messages(response) == [message.diagnostics]


def _parameters(response) -> dict:
    assert response.status_code == 200
    assert response.json()["resourceType"] == "Parameters"
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in response.json()["parameter"]}


def test_validate_code_in_the_anzsco_code_system(api):
    assert _parameters(api.get("/CodeSystem/$validate-code", params={"url": ANZSCO, "code": "253314"})) == {
        "result": True, "display": "Medical Oncologist"}
    assert _parameters(api.get("/CodeSystem/ANZCO-occupations-2013-1.2/$validate-code", params={"code": "999999"})) == {
        "result": False, "message": issue(Msg.CODE_NOT_IN_CODE_SYSTEM, code="999999", code_system=ANZSCO).diagnostics}


def test_validate_code_with_a_wrong_display(api):
    found = _parameters(api.get("/CodeSystem/$validate-code", params={"url": ANZSCO, "code": "253314", "display": "Oncologist"}))
    assert found == {"result": False, "display": "Medical Oncologist",
                     "message": issue(Msg.DISPLAY_WRONG, code="253314", display="Medical Oncologist").diagnostics}


@pytest.mark.parametrize(("system", "code", "result"), [
    (ANZSCO, "253314", True), (SNOMED_OCCUPATIONS, "446701002", True), (SNOMED_OCCUPATIONS, "253314", False), (None, "253314", True),
])
def test_validate_code_in_the_role_code_value_set(api, system, code, result):
    params = {"url": ROLE_CODES, "code": code, **({"system": system} if system else {})}
    assert _parameters(api.get("/ValueSet/$validate-code", params=params))["result"] is result


def test_capability_statement_lists_them(api):
    statement = api.get("/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {i["code"] for i in resources["StructureDefinition"]["interaction"]} == {"read", "search-type"}
    assert [p["name"] for p in resources["CodeSystem"]["searchParam"]] == ["url", "version", "name", "_id", "_count", "_offset"]
    assert resources["ValueSet"]["operation"] == [
        {"name": "expand", "definition": "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"},
        {"name": "validate-code", "definition": "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code"}]
    assert resources["CodeSystem"]["operation"] == [
        {"name": "validate-code", "definition": "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code"}]
    assert "versioning" not in resources["ValueSet"]
    assert resources["PractitionerRole"]["supportedProfile"] == [HPI, "http://hl7.org.nz/fhir/StructureDefinition/NzPractitionerRole",
                                                                 PLAIN_ROLE_PROFILE]
