"""``GET /openapi.json``: valid OpenAPI 3 that schemathesis can test from, listing every route."""

from __future__ import annotations

import typing as t

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.validation.plain_role import ROLES, PractitionerRoleRequest


@pytest.fixture(scope="module")
def document(server) -> dict[str, t.Any]:
    response = requests.get(server.base_url + "/openapi.json", timeout=30)  # no key, no userid
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return t.cast(dict[str, t.Any], response.json())


def test_it_is_openapi_3_that_schemathesis_loads_and_generates_from(document) -> None:
    assert document["openapi"].startswith("3.")
    operations = [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=1, database=None, deadline=None, suppress_health_check=list(HealthCheck))
        def generates(case: t.Any) -> None:
            assert case.method == operation.method.upper()  # noqa: B023 -- run at once, in this iteration
        generates()


def test_it_lists_every_route_of_the_app_and_nothing_else(document, database) -> None:
    app = create_app(Settings(mongodb_uri=database.uri))
    routes = {(rule.rule.replace("<", "{").replace(">", "}"), method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
    documented = {(path, method) for path, methods in document["paths"].items() for method in methods}
    assert documented == routes
    assert ("/openapi.json", "get") in documented and ("/v1/practitioner-roles", "post") in documented


def test_fhir_routes_need_token_key_and_userid_the_plain_api_a_key_and_the_public_ones_nothing(server, document) -> None:
    paths = document["paths"]
    assert paths["/PractitionerRole"]["post"]["security"] == [{"smart": [], "apiKey": [], "userid": []}]
    assert paths["/v1/practitioner-roles"]["post"]["security"] == [{"apiKey": []}]
    for public in ("/metadata", "/openapi.json", "/.well-known/smart-configuration", "/auth/token", "/auth/jwks"):
        assert all("security" not in op for op in paths[public].values())
    schemes = document["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values() if s["type"] == "apiKey"} == {"x-api-key", "userid"}
    discovery = requests.get(server.base_url + "/.well-known/smart-configuration", timeout=10).json()
    flow = schemes["smart"]["flows"]["clientCredentials"]
    assert schemes["smart"]["type"] == "oauth2" and flow["tokenUrl"] == discovery["token_endpoint"]
    assert sorted(flow["scopes"]) == sorted(discovery["scopes_supported"])
    assert "application/x-www-form-urlencoded" in paths["/auth/token"]["post"]["requestBody"]["content"]


def test_search_parameters_come_from_the_search_table(document) -> None:
    names = {p["name"] for p in document["paths"]["/PractitionerRole"]["get"]["parameters"]}
    assert {"practitioner", "organization", "location", "role", "active", "identifier", "_id", "_lastUpdated",
            "_count", "_offset", "_include"} <= names


def test_the_plain_api_body_is_its_schema(document) -> None:
    schema = document["components"]["schemas"]["PlainPractitionerRole"]
    assert set(schema["properties"]) == set(PractitionerRoleRequest().fields)
    assert schema["required"] == ["practitionerId", "role"] and schema["additionalProperties"] is False
    assert schema["properties"]["role"]["enum"] == list(ROLES)
    assert schema["properties"]["availableDays"]["items"]["enum"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert schema["properties"]["availableStartTime"]["pattern"] == "^([01][0-9]|2[0-3]):[0-5][0-9]$"


def test_a_fhir_body_is_an_object_of_its_type(document) -> None:
    body = document["paths"]["/Practitioner/{rid}"]["put"]["requestBody"]["content"]["application/fhir+json"]["schema"]
    assert body["properties"]["resourceType"] == {"enum": ["Practitioner"]}
