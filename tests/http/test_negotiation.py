"""Formats (_format, Accept, _pretty; JSON only) and Prefer (return, on create and update)."""

from __future__ import annotations

import json

import pytest
import requests

from fhir_server.outcome import Msg, issue

from ..support import fresh_role, outcome_messages, stored_counts

ROLE = "/PractitionerRole/R00000029-P"


@pytest.mark.parametrize("accept, media_type", [
    (None, "application/fhir+json"),
    ("application/fhir+json", "application/fhir+json"),
    ("application/json", "application/json"),
    ("*/*", "application/fhir+json"),
    ("application/fhir+xml;q=0.9, application/json;q=0.5", "application/json"),
])
def test_json_is_served_as_asked(api, accept, media_type):
    headers = {"Accept": accept} if accept else {}
    response = api.get(ROLE, headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{media_type}; charset=utf-8"


@pytest.mark.parametrize("fmt, media_type", [("json", "application/fhir+json"), ("application/fhir+json", "application/fhir+json"),
                                             ("application/json", "application/json")])
def test_format_parameter_overrides_accept(api, fmt, media_type):
    response = api.get(ROLE, params={"_format": fmt}, headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(media_type)


@pytest.mark.parametrize("headers, params", [({"Accept": "application/fhir+xml"}, {}), ({"Accept": "application/xml"}, {}),
                                             ({}, {"_format": "xml"}), ({}, {"_format": "application/fhir+xml"})])
def test_xml_is_not_acceptable(api, headers, params):
    response = api.get(ROLE, headers=headers, params=params)
    assert response.status_code == 406
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert outcome_messages(response) == [issue(Msg.NOT_ACCEPTABLE).diagnostics]


def test_pretty_indents(api):
    compact, pretty = api.get(ROLE), api.get(ROLE, params={"_pretty": "true"})
    assert "\n" not in compact.text and "\n  " in pretty.text
    assert json.loads(pretty.text) == compact.json()


def test_prefer_minimal_on_create_has_headers_but_no_body(api):
    response = api.post("/PractitionerRole", fresh_role(), headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["Location"].endswith("/_history/1")
    assert response.headers["ETag"] == 'W/"1"'


def test_prefer_operation_outcome_on_create(api):
    response = api.post("/PractitionerRole", fresh_role(), headers={"Prefer": "return=OperationOutcome"})
    assert response.status_code == 201
    assert response.json()["resourceType"] == "OperationOutcome"
    assert outcome_messages(response) == [issue(Msg.OPERATION_OK, what="Created").diagnostics]
    role_id = response.headers["Location"].split("/PractitionerRole/")[1].split("/")[0]
    assert api.get(f"/PractitionerRole/{role_id}").status_code == 200


def test_prefer_representation_and_minimal_on_update(api):
    role = api.create(fresh_role()).json()
    body = {**role, "telecom": [{"system": "phone", "value": "021 555 0401", "use": "work"}]}
    minimal = api.put(f"/PractitionerRole/{role['id']}", body, if_match="1", headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 200 and minimal.content == b"" and minimal.headers["ETag"] == 'W/"2"'
    body["telecom"][0]["value"] = "021 555 0402"
    full = api.put(f"/PractitionerRole/{role['id']}", body, if_match="2", headers={"Prefer": "return=representation"})
    assert full.status_code == 200 and full.json()["meta"]["versionId"] == "3"


@pytest.mark.parametrize("accept, content_type", [
    ("application/fhir+json; fhirVersion=4.0", "application/fhir+json; fhirVersion=4.0; charset=utf-8"),
    ("application/fhir+json; charset=utf-8", "application/fhir+json; charset=utf-8"),
    ("application/fhir+json; fhirVersion=4.0; charset=UTF-8", "application/fhir+json; fhirVersion=4.0; charset=utf-8"),
    ("application/fhir+json; fhirVersion=4.0.1", "application/fhir+json; fhirVersion=4.0; charset=utf-8"),
    ("application/json; charset=utf-8", "application/json; charset=utf-8"),
    ("application/fhir+json; fhirVersion=3.0, application/json; q=0.5", "application/json; charset=utf-8"),
    ("application/fhir+json; fhirVersion=5.0; q=0.9, application/fhir+json; fhirVersion=4.0; q=0.2",
     "application/fhir+json; fhirVersion=4.0; charset=utf-8"),
    ("application/fhir+json; charset=iso-8859-1, application/json; q=0.1", "application/json; charset=utf-8"),
])
def test_charset_and_fhir_version_parameters_are_served(api, accept, content_type):
    response = api.get(ROLE, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.json()["resourceType"] == "PractitionerRole"


@pytest.mark.parametrize("accept", ["application/fhir+json; fhirVersion=3.0", "application/fhir+json; fhirVersion=5.0",
                                    "application/fhir+json; fhirVersion=3.0, application/json; fhirVersion=5.0"])
def test_another_fhir_version_is_not_acceptable(api, accept):
    response = api.get(ROLE, headers={"Accept": accept})
    assert response.status_code == 406
    assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert outcome_messages(response) == [issue(Msg.FHIR_VERSION_NOT_SERVED, version="4.0").diagnostics]


def test_format_parameter_with_fhir_version(api):
    served = api.get(ROLE, params={"_format": "application/fhir+json; fhirVersion=4.0"})
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/fhir+json; fhirVersion=4.0; charset=utf-8"
    refused = api.get(ROLE, params={"_format": "application/fhir+json; fhirVersion=3.0"})
    assert refused.status_code == 406
    assert outcome_messages(refused) == [issue(Msg.FHIR_VERSION_NOT_SERVED, version="4.0").diagnostics]


def test_metadata_negotiates_fhir_version(server):
    # /metadata is answered from a kept answer once asked: each Accept has its own.
    for _ in range(2):
        served = requests.get(server.base_url + "/metadata", headers={"Accept": "application/fhir+json; fhirVersion=4.0"}, timeout=30)
        assert served.status_code == 200
        assert served.headers["Content-Type"] == "application/fhir+json; fhirVersion=4.0; charset=utf-8"
        refused = requests.get(server.base_url + "/metadata", headers={"Accept": "application/fhir+json; fhirVersion=5.0"}, timeout=30)
        assert refused.status_code == 406
        assert outcome_messages(refused) == [issue(Msg.FHIR_VERSION_NOT_SERVED, version="4.0").diagnostics]


@pytest.mark.parametrize("content_type", ["application/fhir+json; fhirVersion=4.0", "application/fhir+json; charset=utf-8",
                                          "application/fhir+json; fhirVersion=4.0; charset=utf-8"])
def test_request_content_type_parameters_are_taken(api, content_type):
    response = api.post("/PractitionerRole", fresh_role(), headers={"Content-Type": content_type})
    assert response.status_code == 201


def test_request_of_another_fhir_version_is_refused(api, mongo):
    before = stored_counts(mongo)
    response = api.post("/PractitionerRole", fresh_role(), headers={"Content-Type": "application/fhir+json; fhirVersion=3.0"})
    assert response.status_code == 415
    assert outcome_messages(response) == [issue(Msg.FHIR_VERSION_NOT_TAKEN, version="4.0").diagnostics]
    assert stored_counts(mongo) == before


def applied(response) -> set[str]:
    return {p.strip() for p in response.headers.get("Preference-Applied", "").split(",") if p.strip()}


@pytest.mark.parametrize("prefer", ["return=minimal", "return=representation", "return=OperationOutcome"])
def test_preference_applied_names_the_return_honoured(api, prefer):
    response = api.post("/PractitionerRole", fresh_role(), headers={"Prefer": prefer})
    assert response.status_code == 201
    assert applied(response) == {prefer}


@pytest.mark.parametrize("handling", ["strict", "lenient"])
def test_preference_applied_names_the_handling_of_a_search(api, handling):
    response = api.get("/PractitionerRole", params={"practitioner": "90ZZLP"}, headers={"Prefer": f"handling={handling}"})
    assert response.status_code == 200
    assert applied(response) == {f"handling={handling}"}


def test_preferences_not_acted_on_are_not_applied(api):
    read = api.get(ROLE, headers={"Prefer": "return=minimal, respond-async"})
    assert read.status_code == 200 and "Preference-Applied" not in read.headers
    unknown = api.post("/PractitionerRole", fresh_role(), headers={"Prefer": "return=everything"})
    assert unknown.status_code == 201 and "Preference-Applied" not in unknown.headers
