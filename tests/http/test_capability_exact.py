"""The CapabilityStatement lists exactly what is served: each interaction, operation, search and result
parameter it lists answers, and each route of the app is listed (or is named below as not a FHIR
interaction)."""

from __future__ import annotations

import email.utils
import re
import typing as t

import pytest
import requests

from fhir_server.app import create_app
from fhir_server.config import Settings

from ..support import Api, fresh_cpn, fresh_role, practitioner

NOT_SERVED = (404, 405, 501)
# Routes that are not FHIR interactions, and where the statement names them instead.
UNLISTED = {
    ("GET", "/metadata"): "the statement itself",
    ("GET", "/.well-known/smart-configuration"): "SMART discovery, named by rest.security",
    ("POST", "/auth/token"): "the token endpoint, in rest.security's oauth-uris extension",
    ("GET", "/auth/jwks"): "the token endpoint's key set, from SMART discovery",
    ("GET", "/openapi.json"): "the OpenAPI document",
    ("GET", "/healthz"): "liveness, for orchestrators",
    ("GET", "/readyz"): "readiness, for orchestrators",
    ("GET", "/metrics"): "Prometheus metrics",
    ("POST", "/v1/practitioner-roles"): "the plain-JSON API, outside FHIR",
    ("GET", "/v1/practitioner-roles/<role_id>"): "the plain-JSON API, outside FHIR",
    # Answers 405 with the IG's reason (NOT_DELETABLE): delete is deliberately not listed.
    ("DELETE", "/PractitionerRole/<role_id>"): "the refusal of delete",
}
_SHAPES = {  # (method, route after the type) of each interaction, as fhir_server/capabilities.py reads them
    "create": ("POST", ""), "search-type": ("GET", ""), "read": ("GET", "/<id>"), "vread": ("GET", "/<id>/_history/<vid>"),
    "update": ("PUT", "/<id>"), "history-type": ("GET", "/_history"), "history-instance": ("GET", "/<id>/_history"),
}


@pytest.fixture(scope="module")
def statement(server) -> dict[str, t.Any]:
    response = requests.get(server.base_url + "/metadata", timeout=10)
    assert response.status_code == 200
    return t.cast(dict[str, t.Any], response.json())


@pytest.fixture(scope="module")
def samples(api: Api) -> dict[str, tuple[str, str]]:
    """One record of each type, (id, current version), made here so that Provenance has one too."""
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    role = api.create(fresh_role(practitioner={"reference": f"Practitioner/{cpn}"}))
    assert role.status_code == 201, role.text
    rid = role.json()["id"]
    ids = {"PractitionerRole": rid, "Practitioner": cpn, "Organization": "GZZ956-B", "Location": "FZZ958-K",
           "Provenance": f"PractitionerRole-{rid}-1", "StructureDefinition": "HPIPractitionerRole",
           "ValueSet": "hpi-practitioner-role-1.0", "CodeSystem": "hpi-practitionerRole-status-reason"}
    return {rtype: (rid, api.get(f"/{rtype}/{rid}").json().get("meta", {}).get("versionId", "")) for rtype, rid in ids.items()}


def _searches(rtype: str, sample: str, role_id: str) -> dict[str, str]:
    """A value for each search and result parameter, so that each is tried."""
    return {
        "practitioner": "99ZZZS", "organization": "GZZ956-B", "location": "FZZ958-K", "role": "253314", "active": "true",
        "identifier": sample, "_id": sample, "_lastUpdated": "gt2000-01-01", "target": f"PractitionerRole/{role_id}",
        "url": "http://example.org/none", "version": "1.0", "name": "none", "_count": "1", "_offset": "0",
        "_include": f"{rtype}:practitioner", "_revinclude": f"PractitionerRole:{rtype.lower()}",
        "_sort": "-_lastUpdated", "_summary": "true", "_elements": "identifier", "_total": "accurate",
    }


def _call(api: Api, rtype: str, code: str, sample: tuple[str, str]) -> requests.Response:
    rid, vid = sample
    calls: dict[str, t.Callable[[], requests.Response]] = {
        "read": lambda: api.get(f"/{rtype}/{rid}"),
        "vread": lambda: api.get(f"/{rtype}/{rid}/_history/{vid}"),
        "search-type": lambda: api.get(f"/{rtype}", params={"_count": "1"}),
        "history-type": lambda: api.get(f"/{rtype}/_history", params={"_count": "1"}),
        "history-instance": lambda: api.get(f"/{rtype}/{rid}/_history"),
        # An empty resource: served (the request is judged), and nothing is stored.
        "create": lambda: api.post(f"/{rtype}", {"resourceType": rtype}),
        "update": lambda: api.put(f"/{rtype}/{rid}", {"resourceType": rtype, "id": rid}, if_match=f'W/"{vid}"'),
    }
    return calls[code]()


def _resources(statement: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return t.cast(list[dict[str, t.Any]], statement["rest"][0]["resource"])


def test_each_listed_interaction_is_served(api, statement, samples):
    tried = []
    for resource in _resources(statement):
        for interaction in resource["interaction"]:
            response = _call(api, resource["type"], interaction["code"], samples[resource["type"]])
            assert response.status_code not in NOT_SERVED and response.status_code < 500, (resource["type"], interaction, response.text)
            assert response.headers["Content-Type"].startswith("application/fhir+json")
            tried.append((resource["type"], interaction["code"]))
    assert ("PractitionerRole", "update") in tried and ("Provenance", "read") in tried


def test_each_listed_search_and_result_parameter_is_taken_under_strict_handling(api, statement, samples):
    """Prefer: handling=strict refuses a parameter the server does not support; each listed one is taken."""
    for resource in _resources(statement):
        rtype, (rid, _) = resource["type"], samples[resource["type"]]
        values = _searches(rtype, rid, samples["PractitionerRole"][0])
        for param in resource["searchParam"]:
            # With what a search of the type must have: a practitioner (SPEC.md §3.4), a target, or a selective one.
            needed = {"PractitionerRole": "practitioner", "Provenance": "target"}.get(rtype, "_id")
            query = {needed: values[needed], param["name"]: values[param["name"]]}
            response = api.get(f"/{rtype}", params=query, headers={"Prefer": "handling=strict"})
            assert response.status_code == 200, (rtype, param["name"], response.text)
            assert response.json()["type"] == "searchset"
        for include in resource.get("searchInclude", []):
            response = api.get(f"/{rtype}", params={"practitioner": "99ZZZS", "_include": include},
                               headers={"Prefer": "handling=strict"})
            assert response.status_code == 200, (include, response.text)


def test_each_listed_operation_is_served(api, statement, samples):
    for resource in _resources(statement):
        rtype, (rid, _) = resource["type"], samples[resource["type"]]
        for operation in resource.get("operation", []):
            name = operation["name"]
            if name == "validate":
                response = api.post(f"/{rtype}/$validate", {"resourceType": "Parameters",
                                                             "parameter": [{"name": "resource", "resource": fresh_role()}]})
            else:
                args = {"code": "x"} if name == "validate-code" else {}
                response = api.get(f"/{rtype}/{rid}/${name}", params=args)
            assert response.status_code == 200, (rtype, name, response.text)


def test_each_listed_system_interaction_is_served(api, statement):
    codes = [i["code"] for i in statement["rest"][0]["interaction"]]
    assert sorted(codes) == ["batch", "transaction"]
    for code in codes:
        response = api.post("/", {"resourceType": "Bundle", "type": code,
                                  "entry": [{"request": {"method": "GET", "url": "Organization/GZZ956-B"}}]})
        assert response.status_code == 200, (code, response.text)
        assert response.json()["type"] == f"{code}-response"


def test_conditional_read_by_etag_is_served_where_listed(api, statement, samples):
    for resource in _resources(statement):
        if resource.get("conditionalRead") not in ("not-match", "full-support"):
            continue
        rid, vid = samples[resource["type"]]
        response = api.get(f"/{resource['type']}/{rid}", headers={"If-None-Match": f'W/"{vid}"'})
        assert response.status_code == 304, resource["type"]
    assert {r["type"] for r in _resources(statement) if "conditionalRead" in r} == {
        "PractitionerRole", "Practitioner", "Organization", "Location", "Provenance"}


def test_conditional_read_by_date_is_served_where_listed(api, statement, samples):
    for resource in _resources(statement):
        if resource.get("conditionalRead") not in ("modified-since", "full-support"):
            continue
        rid, _ = samples[resource["type"]]
        modified = api.get(f"/{resource['type']}/{rid}").headers["Last-Modified"]
        assert email.utils.parsedate_to_datetime(modified)
        response = api.get(f"/{resource['type']}/{rid}", headers={"If-Modified-Since": modified})
        assert response.status_code == 304, resource["type"]


def test_conditional_create_is_served_where_listed(api, statement):
    for resource in _resources(statement):
        if not resource.get("conditionalCreate"):
            continue
        response = api.post(f"/{resource['type']}", {"resourceType": resource["type"]},
                            headers={"If-None-Exist": "identifier=no-such-id"})
        assert response.status_code not in NOT_SERVED and response.status_code < 500, resource["type"]


def test_each_route_is_listed(statement, database):
    app = create_app(Settings(mongodb_uri=database.uri))
    listed = {(r["type"], i["code"]) for r in _resources(statement) for i in r["interaction"]}
    operations = {(r["type"], o["name"]) for r in _resources(statement) for o in r.get("operation", [])}
    system = {i["code"] for i in statement["rest"][0]["interaction"]}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if (method, rule.rule) in UNLISTED:
                continue
            if rule.rule == "/":
                assert method == "POST" and system == {"batch", "transaction"}
                continue
            m = re.fullmatch(r"/(?P<type>[A-Z][A-Za-z]+)(?P<rest>/.*)?", rule.rule)
            assert m, (method, rule.rule)
            rest = re.sub(r"<[^>]+>", lambda p: "<vid>" if "vid" in p.group(0) else "<id>", m["rest"] or "")
            last = rest.rsplit("/", 1)[-1]
            if last.startswith("$"):
                assert (m["type"], last[1:]) in operations, (method, rule.rule)
                continue
            code = next((c for c, shape in _SHAPES.items() if shape == (method, rest)), None)
            assert code and (m["type"], code) in listed, (method, rule.rule)
