"""Search result parameters (https://hl7.org/fhir/R4/search.html#return): _summary, _elements, _sort,
_total, _revinclude, the first/last links, and what happens to parameters the server does not apply."""

from __future__ import annotations

import typing as t
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fhir_server.outcome import Msg
from fhir_server.service.search import MAX_COUNT

from ..support import FHIR_JSON, Server, fresh_role, outcome_messages, text

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
RESTRICTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
ORG = "GZZ956-B"
READER = ("PractitionerRole.r", "PractitionerRole.s", "Practitioner.r", "Practitioner.s", "Organization.r",
          "Organization.s", "Location.r", "Location.s")


def get(api_or_headers: t.Any, base: str, path: str, params: dict[str, t.Any], **headers: str) -> requests.Response:
    return requests.get(base + path, params=params, headers={**api_or_headers, **headers}, timeout=30)


def entries(bundle: dict, mode: str = "match") -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def link(bundle: dict, relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


@pytest.fixture(scope="module")
def roles(api, person) -> list[dict]:
    made = []
    for _ in range(3):
        body = fresh_role(practitioner={"reference": f"Practitioner/{person}"}, organization={"reference": f"Organization/{ORG}"})
        response = api.create(body)
        assert response.status_code == 201, response.text
        made.append(response.json())
    return made


@pytest.fixture(scope="module")
def secret(api, person) -> dict:
    body = fresh_role(practitioner={"reference": f"Practitioner/{person}"}, organization={"reference": f"Organization/{ORG}"})
    body["meta"] = {"security": [RESTRICTED]}
    response = api.create(body)
    assert response.status_code == 201, response.text
    return response.json()


def search(api, path: str = "/PractitionerRole", **params: t.Any) -> dict:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- _summary and _elements ----------------------------------------------------------------------------

def test_summary_true_keeps_the_summary_elements_and_tags_subsetted(api, person, roles):
    bundle = search(api, practitioner=person, _summary="true")
    for role in entries(bundle):
        assert SUBSETTED in role["meta"]["tag"]
        # PractitionerRole.extension and .text are not in R4's summary; identifier and code are.
        assert "extension" not in role and "text" not in role
        assert role["identifier"] and role["code"]
    assert "_summary=true" in link(bundle, "self")


def test_summary_count_answers_the_total_only(api, person, roles):
    bundle = search(api, practitioner=person, _summary="count")
    assert bundle["total"] >= 3 and "entry" not in bundle


@pytest.mark.parametrize("value, dropped", [("data", "text"), ("text", "extension")])
def test_summary_data_and_text(api, person, roles, value, dropped):
    for role in entries(search(api, practitioner=person, _summary=value)):
        assert dropped not in role and SUBSETTED in role["meta"]["tag"]


def test_summary_false_is_the_whole_resource(api, person, roles):
    [whole] = [r for r in entries(search(api, practitioner=person, _summary="false")) if r["id"] == roles[0]["id"]]
    assert whole == api.get(f"/PractitionerRole/{roles[0]['id']}").json()


def test_elements_keeps_what_is_named(api, person, roles):
    for role in entries(search(api, practitioner=person, _elements="identifier,practitioner")):
        assert set(role) <= {"resourceType", "id", "meta", "identifier", "practitioner", "implicitRules", "modifierExtension"}
        assert role["identifier"] and SUBSETTED in role["meta"]["tag"]


@pytest.mark.parametrize("name, value", [("_summary", "some"), ("_elements", "colour"), ("_sort", "colour")])
def test_bad_result_parameter_values_are_400(api, person, name, value):
    response = api.get("/PractitionerRole", params={"practitioner": person, name: value})
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.SEARCH_VALUE_INVALID, name=name, value=value)]


def test_summary_of_a_confidential_role_hides_no_less(server, person, secret):
    reader = server.headers(*READER)
    bundle = get(reader, server.base_url, "/PractitionerRole", {"practitioner": person, "_summary": "true"}).json()
    [role] = [r for r in entries(bundle) if r["id"] == secret["id"]]
    assert "organization" not in role and SUBSETTED in role["meta"]["tag"]


# --- _sort, _total, links ------------------------------------------------------------------------------

def test_sort_by_last_updated_both_ways(api, person, roles):
    up = [r["meta"]["lastUpdated"] for r in entries(search(api, practitioner=person, _sort="_lastUpdated"))]
    down = [r["meta"]["lastUpdated"] for r in entries(search(api, practitioner=person, _sort="-_lastUpdated"))]
    assert up == sorted(up) and down == sorted(down, reverse=True) and len(up) >= 3


def test_sort_by_several_keys_pages_stably(api, person, roles):
    whole = [r["id"] for r in entries(search(api, practitioner=person, _sort="organization,-_id", _count=50))]
    assert whole == sorted(whole, reverse=True)  # one organisation: the ids decide
    paged = []
    for offset in range(0, len(whole), 2):
        paged += [r["id"] for r in entries(search(api, practitioner=person, _sort="organization,-_id", _count=2, _offset=offset))]
    assert paged == whole


def test_total_none_leaves_the_total_out(api, person, roles):
    bundle = search(api, practitioner=person, _total="none")
    assert "total" not in bundle and entries(bundle)
    assert search(api, practitioner=person, _total="accurate")["total"] >= 3


def test_first_and_last_links(api, person, roles):
    bundle = search(api, practitioner=person, _count=2, _sort="_id")
    total = bundle["total"]
    assert parse_qs(urlsplit(link(bundle, "first")).query)["_offset"] == ["0"]
    last = requests.get(link(bundle, "last"), headers=api.session.headers, timeout=30).json()
    assert int(parse_qs(urlsplit(link(bundle, "last")).query)["_offset"][0]) == (total - 1) // 2 * 2
    assert "next" not in [x["relation"] for x in last["link"]] and entries(last)


# --- what the server does not apply ---------------------------------------------------------------------

def test_has_is_refused_whatever_the_handling(api, person):
    for prefer in ("handling=lenient", "handling=strict"):
        response = api.get("/Practitioner", params={"identifier": person, "_has:PractitionerRole:practitioner:role": "x"},
                           headers={"Prefer": prefer})
        assert response.status_code == 400
        assert outcome_messages(response) == [text(Msg.SEARCH_FILTER_UNSUPPORTED, name="_has:PractitionerRole:practitioner:role")]


def test_chained_parameters_are_refused(api, person):
    response = api.get("/PractitionerRole", params={"practitioner": person, "organization.name": "x"})
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.SEARCH_FILTER_UNSUPPORTED, name="organization.name")]


def test_ignored_parameters_are_said_in_an_outcome_entry(api, person, roles):
    bundle = search(api, practitioner=person, colour="blue", _revinclude="Provenance:target")
    [outcome] = entries(bundle, "outcome")
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["diagnostics"] for i in outcome["issue"]] == [
        text(Msg.SEARCH_IGNORED, name="colour", value="blue", type="PractitionerRole"),
        text(Msg.SEARCH_IGNORED, name="_revinclude", value="Provenance:target", type="PractitionerRole")]
    assert {i["severity"] for i in outcome["issue"]} == {"warning"}


def test_a_count_above_the_maximum_is_cut_with_a_warning(api, person, roles):
    bundle = search(api, practitioner=person, _count=MAX_COUNT + 1)
    [outcome] = entries(bundle, "outcome")
    assert [i["diagnostics"] for i in outcome["issue"]] == [text(Msg.SEARCH_COUNT_CUT, value=MAX_COUNT + 1, limit=MAX_COUNT)]
    assert f"_count={MAX_COUNT}" in link(bundle, "self")


def test_strict_refuses_an_unknown_revinclude(api, person):
    response = api.get("/Practitioner", params={"identifier": person, "_revinclude": "PractitionerRole:endpoint"},
                       headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.SEARCH_REVINCLUDE_UNKNOWN, value="PractitionerRole:endpoint", type="Practitioner")]


# --- _revinclude ---------------------------------------------------------------------------------------

def test_revinclude_adds_a_practitioners_roles(api, person, roles, secret):
    bundle = search(api, "/Practitioner", identifier=person, _revinclude="PractitionerRole:practitioner")
    assert [r["id"] for r in entries(bundle)] == [person]
    included = {r["id"] for r in entries(bundle, "include")}
    assert included == {r["id"] for r in roles} | {secret["id"]}


def test_revinclude_without_admin_redacts_by_practitioner_and_hides_by_organisation(server, person, roles, secret):
    reader = server.headers(*READER)
    by_person = get(reader, server.base_url, "/Practitioner", {"identifier": person, "_revinclude": "PractitionerRole:practitioner"}).json()
    [shown] = [r for r in entries(by_person, "include") if r["id"] == secret["id"]]
    assert "organization" not in shown
    by_org = get(reader, server.base_url, "/Organization", {"_id": ORG, "_revinclude": "PractitionerRole:organization"}).json()
    found = {r["id"] for r in entries(by_org, "include")}
    assert {r["id"] for r in roles} <= found and secret["id"] not in found


def test_revinclude_by_organisation_with_admin_includes_confidential_roles(api, roles, secret):
    bundle = search(api, "/Organization", _id=ORG, _revinclude="PractitionerRole:organization")
    assert secret["id"] in {r["id"] for r in entries(bundle, "include")}


def test_revinclude_needs_the_role_read_scope(server: Server, person):
    headers = server.headers("Practitioner.r", "Practitioner.s")
    response = get(headers, server.base_url, "/Practitioner", {"identifier": person, "_revinclude": "PractitionerRole:practitioner"})
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith(FHIR_JSON)


# --- reads ---------------------------------------------------------------------------------------------

def test_a_read_with_summary_or_elements_is_subsetted(api, roles):
    rid = roles[0]["id"]
    summary = api.get(f"/PractitionerRole/{rid}", params={"_summary": "true"}).json()
    assert "extension" not in summary and summary["identifier"] and SUBSETTED in summary["meta"]["tag"]
    elements = api.get(f"/Practitioner/{roles[0]['practitioner']['reference'].split('/')[1]}", params={"_elements": "name"}).json()
    assert set(elements) <= {"resourceType", "id", "meta", "name", "implicitRules", "modifierExtension"} and elements["name"]
    assert api.get(f"/PractitionerRole/{rid}").json() == roles[0]


def test_a_read_refuses_summary_count(api, roles):
    response = api.get(f"/PractitionerRole/{roles[0]['id']}", params={"_summary": "count"})
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.SEARCH_VALUE_INVALID, name="_summary", value="count")]
