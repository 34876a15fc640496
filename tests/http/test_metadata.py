"""GET /metadata: a CapabilityStatement that says what the server really does."""

from __future__ import annotations

import importlib.metadata

import pytest
import requests


@pytest.fixture(scope="module")
def statement(server) -> dict:
    response = requests.get(server.base_url + "/metadata", timeout=10)
    assert response.status_code == 200
    return response.json()


def resource(statement: dict, rtype: str) -> dict:
    return next(r for r in statement["rest"][0]["resource"] if r["type"] == rtype)


def test_it_is_r4_json(statement):
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert set(statement["format"]) >= {"application/fhir+json", "json"}
    assert statement["kind"] == "instance" and statement["rest"][0]["mode"] == "server"


def test_the_software_version_is_the_packages_in_the_statement_and_the_openapi_document(server, statement):
    version = importlib.metadata.version("fhir-server")  # pyproject.toml's, as installed
    assert statement["software"] == {"name": "fhir-server", "version": version}
    assert requests.get(server.base_url + "/openapi.json", timeout=10).json()["info"]["version"] == version


def test_its_security_is_smart_with_the_token_endpoint_that_discovery_names(server, statement):
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"] == [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                                 "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}]
    uris = next(e for e in security["extension"]
                if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
    discovery = requests.get(server.base_url + "/.well-known/smart-configuration", timeout=10).json()
    assert uris["extension"] == [{"url": "token", "valueUri": discovery["token_endpoint"]}]
    assert requests.post(discovery["token_endpoint"], timeout=10).status_code == 400  # it is there, and wants a form
    assert all(word in security["description"] for word in ("Bearer", "x-api-key", "userid", "User-Agent"))

def test_practitioner_role_lists_its_interactions_profile_parameters_and_includes(statement):
    role = resource(statement, "PractitionerRole")
    assert role["profile"] == "http://hl7.org.nz/fhir/StructureDefinition/HPIPractitionerRole"
    assert [i["code"] for i in role["interaction"]] == ["create", "search-type", "read", "vread", "update", "history-type",
                                                      "history-instance"]
    assert "delete" not in {i["code"] for i in role["interaction"]}
    assert {p["name"]: p["type"] for p in role["searchParam"]} == {
        "practitioner": "reference", "organization": "reference", "location": "reference", "role": "token",
        "active": "token", "identifier": "token", "_id": "token", "_lastUpdated": "date",
        "_count": "number", "_offset": "number", "_sort": "special", "_summary": "token", "_elements": "special",
        "_total": "token", "_include": "special"}
    assert role["searchInclude"] == ["PractitionerRole:location", "PractitionerRole:organization", "PractitionerRole:practitioner"]
    assert role["operation"] == [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]
    assert role["versioning"] == "versioned-update" and role["readHistory"] is True and role["conditionalCreate"] is True
    assert role["conditionalRead"] == "full-support"
    assert [i["code"] for i in statement["rest"][0]["interaction"]] == ["transaction", "batch"]


def test_every_interaction_it_lists_answers(api, statement):
    """The statement is read off the routes: each listed interaction of PractitionerRole is served."""
    calls = {
        "read": lambda: api.get("/PractitionerRole/R00000029-P"),
        "vread": lambda: api.get("/PractitionerRole/R00000029-P/_history/4"),
        "search-type": lambda: api.get("/PractitionerRole", params={"practitioner": "99ZZZS"}),
        "history-type": lambda: api.get("/PractitionerRole/_history"),
        "history-instance": lambda: api.get("/PractitionerRole/R00000029-P/_history"),
    }
    for interaction in resource(statement, "PractitionerRole")["interaction"]:
        if interaction["code"] in calls:
            assert calls[interaction["code"]]().status_code == 200, interaction["code"]


def test_the_same_request_again_gets_the_same_statement_with_its_own_request_id(server):
    """Answers are kept by the serving front: each still carries its own X-Request-Id, the correlation
    id it was sent, and the media type and base URL its own headers ask for."""
    first, again = (requests.get(server.base_url + "/metadata", timeout=10) for _ in range(2))
    assert first.content == again.content
    assert first.headers["Content-Type"] == again.headers["Content-Type"]
    assert first.headers["X-Request-Id"] != again.headers["X-Request-Id"]
    correlated = requests.get(server.base_url + "/metadata", headers={"X-Correlation-Id": "c-1"}, timeout=10)
    assert correlated.headers["X-Correlation-Id"] == "c-1" and correlated.content == first.content
    plain = requests.get(server.base_url + "/metadata", headers={"Accept": "application/json"}, timeout=10)
    assert plain.headers["Content-Type"].startswith("application/json")
    by_name = server.base_url.replace("127.0.0.1", "localhost")
    elsewhere = requests.get(server.base_url + "/metadata", headers={"Host": by_name.removeprefix("http://")}, timeout=10)
    assert elsewhere.json()["implementation"]["url"] == by_name
    assert requests.get(server.base_url + "/metadata", timeout=10).content == first.content
    head = requests.head(server.base_url + "/metadata", timeout=10)
    assert head.status_code == 200 and head.content == b"" and head.headers["Content-Length"] == first.headers["Content-Length"]
