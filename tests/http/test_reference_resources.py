"""Practitioner, Organization and Location over FHIR: read, search, create, update (SPEC.md §2, §4).

Tests that write make their own records, with fresh ids, so that the seeded records other tests rely on
stay as loaded.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from fhir_server import identifiers as ids
from fhir_server.outcome import Msg
from fhir_server.seed import load_resources

from ..support import ROOT, Api, checked_ids, fresh_role, outcome_expressions, outcome_messages, text

SEEDED = {f"{r['resourceType']}/{r['id']}" for r in load_resources()}
SYSTEMS = {"Practitioner": ids.PERSON_SYSTEM, "Organization": ids.ORGANISATION_SYSTEM, "Location": ids.FACILITY_SYSTEM}
NZBN = "https://standards.digital.health.nz/ns/hpi-nzbn"
DEPRECATED_PERSON_SYSTEM = "https://standards.digital.health.nz/id/hpi-person"


# --- fresh, valid ids that no seeded record has ------------------------------------------------------

def _cpns() -> t.Iterator[str]:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    for digits, tail in itertools.product(range(10, 90), itertools.product(letters, repeat=4)):
        yield f"{digits}{''.join(tail)}"


_FRESH = {"Practitioner": _cpns(), "Organization": checked_ids("GTS"), "Location": checked_ids("FTS")}
_fresh_lock = threading.Lock()


def fresh_id(rtype: str) -> str:
    with _fresh_lock:
        value = next(v for v in _FRESH[rtype] if f"{rtype}/{v}" not in SEEDED)
    assert {"Practitioner": ids.is_valid_cpn, "Organization": ids.is_valid_organisation_id,
            "Location": ids.is_valid_facility_id}[rtype](value)
    return value


def hpi_id(rtype: str, value: str, use: str = "official") -> dict[str, str]:
    return {"use": use, "system": SYSTEMS[rtype], "value": value}


def new_record(rtype: str, value: str | None = None, *, dormant: t.Sequence[str] = (), name: str | None = None,
               **more: t.Any) -> dict[str, t.Any]:
    value = value or fresh_id(rtype)
    record: dict[str, t.Any] = {"resourceType": rtype,
                                "identifier": [hpi_id(rtype, value), *(hpi_id(rtype, d, "old") for d in dormant)]}
    if rtype == "Practitioner":
        record["name"] = [{"family": name or f"Tester {value}", "given": ["Pat"]}]
    else:
        record["name"] = name or f"Test {rtype} {value}"
    return {**record, **more}


def created(api: Api, record: dict[str, t.Any]) -> dict[str, t.Any]:
    response = api.post(f"/{record['resourceType']}", record)
    assert response.status_code == 201, response.text
    return response.json()


def seeded_file(name: str) -> dict[str, t.Any]:
    return json.loads((ROOT / "fhir_server" / "reference_data" / f"{name}.json").read_text())


# --- read --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, live", [("Practitioner/98ZZQJ", "98ZZQJ"), ("Practitioner/90ZZGJ", "98ZZQJ"),
                                        ("Location/FZZ999-B", "FZZ999-B"), ("Location/FZZ997-J", "FZZ999-B"),
                                        ("Organization/GZZ991-D", "GZZ991-D")])
def test_read_answers_the_live_record_for_a_live_or_dormant_id(api, path, live):
    response = api.get(f"/{path}")
    assert response.status_code == 200
    assert response.json() == seeded_file(live)  # the IG example as loaded, its own meta kept
    assert response.headers["ETag"] == f'W/"{seeded_file(live)["meta"]["versionId"]}"'
    assert response.headers["Last-Modified"]
    assert response.headers["Content-Location"].endswith(f"/{path.split('/')[0]}/{live}/_history/{response.json()['meta']['versionId']}")


def test_records_loaded_without_meta_get_version_1_and_a_time(api, mongo):
    body = api.get("/Practitioner/97ZACB").json()
    assert body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"]
    assert body["meta"]["profile"] == ["http://hl7.org.nz/fhir/StructureDefinition/HPIPractitioner"]  # kept
    stored = mongo["reference_resources"].find_one({"_id": "Practitioner/97ZACB"})
    assert stored["vid"] == 1 and stored["search"]["identifier"] == [f"{ids.PERSON_SYSTEM}|97ZACB", "97ZACB", f"{ids.PERSON_SYSTEM}|"]


@pytest.mark.parametrize("rtype, rid", [("Practitioner", "12ZZZZ"), ("Practitioner", "nonsense"), ("Organization", "G00001-H"),
                                        ("Organization", "GZZ998-G-"), ("Location", "FZZ999-C"), ("Location", "GZZ998-G")])
def test_unknown_or_malformed_id_is_404(api, rtype, rid):
    response = api.get(f"/{rtype}/{rid}")
    assert response.status_code == 404
    assert outcome_messages(response) == [text(Msg.NOT_FOUND, id=rid)]
    assert outcome_expressions(response) == [f"{rtype}.id"]


def test_if_none_match_with_the_current_version_is_304(api):
    assert api.get("/Organization/GZZ956-B", headers={"If-None-Match": 'W/"8910"'}).status_code == 304
    assert api.get("/Organization/GZZ956-B", headers={"If-None-Match": 'W/"8909"'}).status_code == 200


def test_the_version_url_serves_the_current_version_only(api):
    assert api.get("/Location/FZZ999-B/_history/11148").json()["id"] == "FZZ999-B"
    older = api.get("/Location/FZZ999-B/_history/11147")
    assert older.status_code == 404
    assert outcome_messages(older) == [text(Msg.VERSION_NOT_FOUND, type="Location", id="FZZ999-B", vid="11147")]


def test_delete_is_not_allowed(api):
    response = api.delete("/Practitioner/98ZZQJ")
    assert response.status_code == 405
    assert api.get("/Practitioner/98ZZQJ").status_code == 200


# --- search ------------------------------------------------------------------------------------------

def found(api: Api, rtype: str, **params: t.Any) -> list[str]:
    response = api.get(f"/{rtype}", params=params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert all(e["resource"]["resourceType"] == rtype and e["fullUrl"].endswith(f"/{rtype}/{e['resource']['id']}")
               for e in bundle.get("entry", []))
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


@pytest.mark.parametrize("value", ["98ZZQJ", f"{ids.PERSON_SYSTEM}|98ZZQJ", "90ZZGJ", f"{ids.PERSON_SYSTEM}|90ZZGJ",
                                   "https://standards.digital.health.nz/ns/nursing-council-id|962054"])
def test_search_by_identifier_with_or_without_system_live_or_dormant(api, value):
    assert found(api, "Practitioner", identifier=value) == ["98ZZQJ"]


def test_search_is_per_type(api):
    assert found(api, "Organization", identifier="98ZZQJ") == []
    assert found(api, "Practitioner", identifier=f"{ids.FACILITY_SYSTEM}|FZZ999-B") == []
    assert found(api, "Location", identifier="FZZ997-J") == ["FZZ999-B"]


def test_search_by_id_is_by_the_live_id(api):
    assert found(api, "Location", _id="FZZ999-B,FZZ941-D") == ["FZZ941-D", "FZZ999-B"]
    assert found(api, "Location", _id="FZZ997-J") == []


def test_search_by_last_updated(api):
    new = created(api, new_record("Organization"))
    assert new["id"] in found(api, "Organization", _lastUpdated=f"ge{new['meta']['lastUpdated']}")
    # Of the IG's examples with their own meta, these were last updated before 2023.
    assert found(api, "Practitioner", _lastUpdated="lt2023-01-01") == ["90ZZLP", "91ZABY", "92ZZRE", "98ZZQJ"]


def test_search_pages_with_count_and_offset(api):
    first = api.get("/Organization", params={"_lastUpdated": "ge2000", "_count": 2}).json()
    assert len(first["entry"]) == 2 and first["total"] >= 10
    links = {link["relation"]: link["url"] for link in first["link"]}
    second = api.session.get(links["next"], timeout=10).json()
    assert {e["resource"]["id"] for e in first["entry"]}.isdisjoint(e["resource"]["id"] for e in second["entry"])


@pytest.mark.parametrize("params", [{}, {"_count": "5"}, {"_lastUpdated": "ne2024-01-01"}])
def test_a_search_no_index_serves_is_refused(api, params):
    response = api.get("/Organization", params=params)
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.SEARCH_NOT_SELECTIVE, type="Organization")]


def test_repeated_and_ne_conditions_all_hold(api):
    assert found(api, "Location", _id="FZZ999-B,FZZ941-D", _lastUpdated=["ge2000", "ne2000"]) == ["FZZ941-D", "FZZ999-B"]
    assert found(api, "Location", _id=["FZZ999-B,FZZ941-D", "FZZ941-D"]) == ["FZZ941-D"]
    assert found(api, "Practitioner", identifier=["98ZZQJ", "90ZZGJ"]) == ["98ZZQJ"]


def test_search_rejects_what_it_cannot_read(api):
    bad = api.get("/Practitioner", params={"_lastUpdated": "yesterday"})
    assert bad.status_code == 400
    assert outcome_messages(bad) == [text(Msg.SEARCH_VALUE_INVALID, name="_lastUpdated", value="yesterday")]
    strict = api.get("/Practitioner", params={"family": "Smith"}, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert outcome_messages(strict) == [text(Msg.SEARCH_PARAM_UNKNOWN, name="family", type="Practitioner")]


# --- create ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rtype", ["Practitioner", "Organization", "Location"])
def test_create_gives_201_with_the_id_of_the_official_identifier(api, mongo, server, rtype):
    value = fresh_id(rtype)
    sent = new_record(rtype, value, id="client-id", meta={"versionId": "9", "profile": [f"http://example.org/{rtype}"]})
    response = api.post(f"/{rtype}", sent)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == value
    assert body["meta"]["versionId"] == "1" and body["meta"]["profile"] == [f"http://example.org/{rtype}"]
    assert body["identifier"] == sent["identifier"] and body["name"] == sent["name"]
    assert response.headers["Location"] == f"{server.base_url}/{rtype}/{value}/_history/1"
    assert response.headers["ETag"] == 'W/"1"'
    assert api.session.get(response.headers["Location"], timeout=10).json() == body
    assert api.get(f"/{rtype}/{value}").json() == body
    stored = mongo["reference_resources"].find_one({"_id": f"{rtype}/{value}"})
    assert stored["resource"] == body and stored["refs"] == [f"{rtype}/{value}"] and stored["vid"] == 1
    assert found(api, rtype, identifier=value) == [value]


def test_create_with_prefer_minimal_has_no_body(api):
    response = api.post("/Location", new_record("Location"), headers={"Prefer": "return=minimal"})
    assert response.status_code == 201 and response.content == b"" and response.headers["Location"]


def test_a_deprecated_system_uri_is_accepted(api):
    value = fresh_id("Practitioner")
    body = created(api, new_record("Practitioner", identifier=[{"use": "official", "system": DEPRECATED_PERSON_SYSTEM, "value": value}]))
    assert body["id"] == value
    assert api.get(f"/Practitioner/{value}").status_code == 200


@pytest.mark.parametrize("data, messages, expressions", [
    ('{"resourceType": "Practitioner", "name": "Jo"}', [text(Msg.WRONG_JSON_TYPE, expected="array", got="string")],
     ["Practitioner.name"]),
    ('{"resourceType": "Organization"}', [text(Msg.WRONG_RESOURCE_TYPE, expected="Practitioner")], ["Practitioner.resourceType"]),
    ('{"resourceType": "Practitioner", "identifier": [{"value": null}]}', [text(Msg.NULL_VALUE)],
     ["Practitioner.identifier[0].value"]),
    ("[]", [text(Msg.NOT_AN_OBJECT)], []),
])
def test_structural_problems_are_400(api, mongo, data, messages, expressions):
    before = mongo["reference_resources"].count_documents({})
    response = api.post("/Practitioner", data=data)
    assert response.status_code == 400
    assert outcome_messages(response) == messages and outcome_expressions(response) == expressions
    assert mongo["reference_resources"].count_documents({}) == before


def test_json_only(api):
    response = api.post("/Organization", data="<Organization/>", headers={"Content-Type": "application/fhir+xml"})
    assert response.status_code == 415
    assert outcome_messages(response) == [text(Msg.UNSUPPORTED_MEDIA_TYPE)]


def test_every_identifier_problem_is_named_at_once(api, mongo):
    before = mongo["reference_resources"].count_documents({})
    sent = new_record("Organization", identifier=[
        {"use": "official", "system": ids.ORGANISATION_SYSTEM, "value": "GZZ998-H"},  # wrong check character
        {"use": "old", "system": ids.ORGANISATION_SYSTEM, "value": "G00003-A"},  # G00003 has none
        {"use": "usual", "system": ids.ORGANISATION_SYSTEM, "value": fresh_id("Organization")},
        {"use": "official", "system": NZBN, "value": "9999999999777"},  # not the HPI system: not checked
    ])
    response = api.post("/Organization", sent)
    assert response.status_code == 422
    name = "hpi-organisation-id"
    assert outcome_messages(response) == [
        text(Msg.REFERENCE_ID_INVALID, name=name, value="GZZ998-H"),
        text(Msg.REFERENCE_ID_INVALID, name=name, value="G00003-A"),
        text(Msg.REFERENCE_ID_USE, name=name),
    ]
    assert outcome_expressions(response) == ["Organization.identifier[0].value", "Organization.identifier[1].value",
                                             "Organization.identifier[2].use"]
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "EM07208"
    assert mongo["reference_resources"].count_documents({}) == before


@pytest.mark.parametrize("rtype, identifiers, message, expression", [
    ("Practitioner", [], text(Msg.REFERENCE_ID_REQUIRED, name="hpi-person-id", type="Practitioner"), "Practitioner.identifier"),
    ("Location", [{"use": "old", "system": ids.FACILITY_SYSTEM, "value": "FZZ961-K"}],
     text(Msg.REFERENCE_ID_REQUIRED, name="hpi-facility-id", type="Location"), "Location.identifier"),
    ("Practitioner", [{"use": "official", "system": ids.PERSON_SYSTEM, "value": "12ABCI"}],  # no I or O in CPNs
     text(Msg.REFERENCE_ID_INVALID, name="hpi-person-id", value="12ABCI"), "Practitioner.identifier[0].value"),
    ("Practitioner", [{"use": "official", "system": ids.PERSON_SYSTEM}],
     text(Msg.REFERENCE_ID_INVALID, name="hpi-person-id", value=""), "Practitioner.identifier[0].value"),
    ("Location", [{"use": "official", "system": ids.FACILITY_SYSTEM, "value": "GZZ998-G"}],  # an organisation id
     text(Msg.REFERENCE_ID_INVALID, name="hpi-facility-id", value="GZZ998-G"), "Location.identifier[0].value"),
])
def test_the_official_identifier_is_required_and_checked(api, rtype, identifiers, message, expression):
    response = api.post(f"/{rtype}", new_record(rtype, identifier=identifiers))
    assert response.status_code == 422
    assert outcome_messages(response) == [message] and outcome_expressions(response) == [expression]


def test_only_one_official_identifier(api):
    sent = new_record("Location", identifier=[hpi_id("Location", fresh_id("Location")), hpi_id("Location", fresh_id("Location"))])
    response = api.post("/Location", sent)
    assert response.status_code == 422
    assert outcome_messages(response) == [text(Msg.REFERENCE_ID_TOO_MANY, name="hpi-facility-id", type="Location")]


@pytest.mark.parametrize("record, identifier, holder", [
    # A dormant id of a seeded record cannot become another's live id, nor a live id another's dormant one.
    (lambda: new_record("Practitioner", "90ZZGJ"), f"{ids.PERSON_SYSTEM}|90ZZGJ", "Practitioner/98ZZQJ"),
    (lambda: new_record("Location", dormant=["FZZ961-K"]), f"{ids.FACILITY_SYSTEM}|FZZ961-K", "Location/FZZ961-K"),
    (lambda: new_record("Organization", "GZZ998-G"), f"{ids.ORGANISATION_SYSTEM}|GZZ998-G", "Organization/GZZ998-G"),
])
def test_an_hpi_identifier_belongs_to_one_record(api, mongo, record, identifier, holder):
    before = mongo["reference_resources"].count_documents({})
    response = api.post(f"/{holder.split('/')[0]}", record())
    assert response.status_code == 422
    assert outcome_messages(response) == [text(Msg.IDENTIFIER_IN_USE, identifier=identifier, key=holder)]
    assert mongo["reference_resources"].count_documents({}) == before


def test_creating_the_same_record_twice_names_the_first(api):
    sent = new_record("Practitioner")
    first = created(api, sent)
    second = api.post("/Practitioner", sent)
    assert second.status_code == 422
    assert outcome_messages(second) == [text(Msg.IDENTIFIER_IN_USE, identifier=f"{ids.PERSON_SYSTEM}|{first['id']}",
                                             key=f"Practitioner/{first['id']}")]
    assert outcome_expressions(second) == ["Practitioner.identifier[0]"]


def test_ten_parallel_creates_of_one_record_store_it_once(server, mongo):
    sent = new_record("Organization")
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: Api(server).post("/Organization", sent), range(10)))
    assert sorted(r.status_code for r in responses) == [201] + [422] * 9
    assert mongo["reference_resources"].count_documents({"refs": f"Organization/{sent['identifier'][0]['value']}"}) == 1


# --- conditional create ------------------------------------------------------------------------------

def test_if_none_exist_returns_the_existing_record_without_writing(api, mongo):
    existing = created(api, new_record("Location"))
    again = new_record("Location", existing["id"], name="Another name")
    response = api.post("/Location", again, headers={"If-None-Exist": f"identifier={ids.FACILITY_SYSTEM}|{existing['id']}"})
    assert response.status_code == 200
    assert response.json() == existing and response.headers["ETag"] == 'W/"1"' and "Location" not in response.headers
    assert mongo["reference_resources"].find_one({"_id": f"Location/{existing['id']}"})["resource"] == existing


def test_if_none_exist_finds_by_a_dormant_id(api):
    response = api.post("/Practitioner", new_record("Practitioner"), headers={"If-None-Exist": "identifier=90ZZGJ"})
    assert response.status_code == 200 and response.json()["id"] == "98ZZQJ"


def test_if_none_exist_creates_when_nothing_matches(api):
    sent = new_record("Organization")
    response = api.post("/Organization", sent, headers={"If-None-Exist": f"identifier={sent['identifier'][0]['value']}"})
    assert response.status_code == 201 and response.json()["id"] == sent["identifier"][0]["value"]


def test_if_none_exist_matching_several_is_412(api, mongo):
    nzbn = {"use": "official", "system": NZBN, "value": "9999999999555"}
    for _ in range(2):  # NZBNs are not HPI identifiers: two records may share one
        created(api, new_record("Organization", identifier=[hpi_id("Organization", fresh_id("Organization")), nzbn]))
    before = mongo["reference_resources"].count_documents({})
    response = api.post("/Organization", new_record("Organization"), headers={"If-None-Exist": f"identifier={NZBN}|9999999999555"})
    assert response.status_code == 412
    assert outcome_messages(response) == [text(Msg.CONDITION_AMBIGUOUS, count=2)]
    assert mongo["reference_resources"].count_documents({}) == before


def test_if_none_exist_must_name_an_identifier(api):
    response = api.post("/Organization", new_record("Organization"), headers={"If-None-Exist": "name=Test"})
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.CONDITION_INVALID)]


@pytest.mark.parametrize("round_", range(3))  # the requests race only sometimes: several rounds, each a fresh record
def test_ten_parallel_conditional_creates_store_one_and_all_get_it(server, mongo, round_):
    sent = new_record("Practitioner")
    value = sent["identifier"][0]["value"]
    condition = {"If-None-Exist": f"identifier={ids.PERSON_SYSTEM}|{value}"}
    start = threading.Barrier(10)

    def create(_: int) -> requests.Response:
        api = Api(server)
        start.wait()
        return api.post("/Practitioner", sent, headers=condition)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(create, range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [r.text for r in responses]
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1  # all got the one stored record
    assert mongo["reference_resources"].count_documents({"refs": f"Practitioner/{value}"}) == 1


# --- update ------------------------------------------------------------------------------------------

def test_update_makes_version_2_and_keeps_name_and_refs_in_step(api, mongo):
    first = created(api, new_record("Practitioner"))
    changed = copy.deepcopy(first)
    changed["name"][0]["family"] = "Renamed"
    dormant = fresh_id("Practitioner")
    changed["identifier"].append(hpi_id("Practitioner", dormant, "old"))
    response = api.put(f"/Practitioner/{first['id']}", changed, if_match='W/"1"')
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["versionId"] == "2" and response.headers["ETag"] == 'W/"2"'
    assert body["meta"]["lastUpdated"] >= first["meta"]["lastUpdated"]
    assert body["name"] == changed["name"] and body["identifier"] == changed["identifier"]
    stored = mongo["reference_resources"].find_one({"_id": f"Practitioner/{first['id']}"})
    assert stored["name"] == "Pat Renamed" and stored["vid"] == 2
    assert sorted(stored["refs"]) == sorted([f"Practitioner/{first['id']}", f"Practitioner/{dormant}"])
    assert api.get(f"/Practitioner/{dormant}").json() == body  # the new dormant id names it
    assert found(api, "Practitioner", identifier=dormant) == [first["id"]]


def test_an_update_changing_nothing_makes_no_version(api):
    first = created(api, new_record("Organization"))
    response = api.put(f"/Organization/{first['id']}", first, if_match="1")
    assert response.status_code == 200 and response.json() == first and response.headers["ETag"] == 'W/"1"'


def test_update_takes_the_version_from_if_match_only(api):
    first = created(api, new_record("Organization"))
    response = api.put(f"/Organization/{first['id']}", {**first, "name": "New", "meta": {"versionId": "77"}}, if_match='"1"')
    assert response.status_code == 200 and response.json()["meta"]["versionId"] == "2"


@pytest.mark.parametrize("if_match, status, msg", [(None, 428, Msg.IF_MATCH_REQUIRED), ("W/one", 400, Msg.IF_MATCH_INVALID),
                                                   ('W/"2"', 409, Msg.VERSION_CONFLICT)])
def test_update_needs_the_current_version(api, if_match, status, msg):
    first = created(api, new_record("Location"))
    response = api.put(f"/Location/{first['id']}", {**first, "name": "Changed"}, if_match=if_match)
    assert response.status_code == status
    assert outcome_messages(response) == [text(msg)]
    assert api.get(f"/Location/{first['id']}").json() == first


def test_update_of_an_unknown_or_dormant_id_is_404(api):
    unknown = fresh_id("Practitioner")
    response = api.put(f"/Practitioner/{unknown}", new_record("Practitioner", unknown, id=unknown), if_match="1")
    assert response.status_code == 404
    assert outcome_messages(response) == [text(Msg.NOT_FOUND, id=unknown)]
    # A dormant id names a record for reading only: the body would have to carry the live id.
    dormant = api.put("/Practitioner/90ZZGJ", {**seeded_file("98ZZQJ"), "id": "90ZZGJ"}, if_match='W/"10594"')
    assert dormant.status_code == 404


def test_update_body_id_must_be_the_url_id(api):
    first = created(api, new_record("Organization"))
    response = api.put(f"/Organization/{first['id']}", {**first, "id": "GZZ998-G"}, if_match="1")
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.ID_MISMATCH, url_id=first["id"])]


def test_the_official_identifier_cannot_change(api):
    first = created(api, new_record("Location"))
    moved = {**first, "identifier": [hpi_id("Location", fresh_id("Location"))]}
    response = api.put(f"/Location/{first['id']}", moved, if_match="1")
    assert response.status_code == 422
    assert outcome_messages(response) == [text(Msg.REFERENCE_ID_CHANGED, name="hpi-facility-id", type="Location", id=first["id"])]
    gone = api.put(f"/Location/{first['id']}", {**first, "identifier": []}, if_match="1")
    assert outcome_messages(gone) == [text(Msg.REFERENCE_ID_REQUIRED, name="hpi-facility-id", type="Location")]


def test_an_update_cannot_take_another_records_identifier(api):
    first = created(api, new_record("Practitioner"))
    taking = {**first, "identifier": [*first["identifier"], hpi_id("Practitioner", "90ZZGJ", "old")]}
    response = api.put(f"/Practitioner/{first['id']}", taking, if_match="1")
    assert response.status_code == 422
    assert outcome_messages(response) == [text(Msg.IDENTIFIER_IN_USE, identifier=f"{ids.PERSON_SYSTEM}|90ZZGJ",
                                               key="Practitioner/98ZZQJ")]
    assert outcome_expressions(response) == ["Practitioner.identifier[1]"]
    assert api.get(f"/Practitioner/{first['id']}").json() == first


@pytest.mark.parametrize("round_", range(5))  # the requests race only sometimes: several rounds, each a fresh record
def test_parallel_updates_from_one_version_give_one_200(server, mongo, round_):
    first = created(Api(server), new_record("Organization"))
    start = threading.Barrier(8)

    def update(n: int) -> int:
        api = Api(server)
        start.wait()
        return api.put(f"/Organization/{first['id']}", {**first, "name": f"Name {n}"}, if_match='W/"1"').status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(update, range(8)))
    assert statuses == [200] + [409] * 7
    stored = mongo["reference_resources"].find_one({"_id": f"Organization/{first['id']}"})
    assert stored["vid"] == 2 and stored["resource"]["meta"]["versionId"] == "2" and stored["name"] == stored["resource"]["name"]


# --- what PractitionerRoles see ----------------------------------------------------------------------

def test_a_role_can_point_at_new_records_and_shows_their_current_names(api):
    dormant_cpn = fresh_id("Practitioner")
    practitioner = created(api, new_record("Practitioner", dormant=[dormant_cpn], name="Ngata"))
    organization = created(api, new_record("Organization", name="Kōwhai Health"))
    location = created(api, new_record("Location", name="Kōwhai Clinic"))
    role = fresh_role(practitioner={"reference": f"Practitioner/{dormant_cpn}"},
                      organization={"reference": f"Organization/{organization['id']}"},
                      location=[{"reference": f"Location/{location['id']}"}])
    response = api.create(role)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["practitioner"] == {"reference": f"Practitioner/{practitioner['id']}", "display": "Pat Ngata"}
    assert body["organization"] == {"reference": f"Organization/{organization['id']}", "display": "Kōwhai Health"}
    assert body["location"] == [{"reference": f"Location/{location['id']}", "display": "Kōwhai Clinic"}]

    renamed = {**practitioner, "name": [{"family": "Ngata-Reid", "given": ["Pat"], "prefix": ["dr"]}]}
    assert api.put(f"/Practitioner/{practitioner['id']}", renamed, if_match="1").status_code == 200
    later = api.create(fresh_role(practitioner={"reference": f"Practitioner/{practitioner['id']}"}))
    assert later.status_code == 201, later.text
    assert later.json()["practitioner"]["display"] == "dr Pat Ngata-Reid"


def test_a_role_cannot_point_at_a_record_that_was_never_created(api):
    response = api.create(fresh_role(organization={"reference": f"Organization/{fresh_id('Organization')}"}))
    assert response.status_code == 422
    assert outcome_messages(response) == [text(Msg.ORGANIZATION_INVALID)]


def test_the_capability_statement_lists_the_reference_types(api):
    statement = api.get("/metadata").json()
    listed = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for rtype in ("Practitioner", "Organization", "Location"):
        assert [i["code"] for i in listed[rtype]["interaction"]] == ["create", "search-type", "read", "vread", "update"]
        assert {p["name"] for p in listed[rtype]["searchParam"]} == {
            "identifier", "_id", "_lastUpdated", "_count", "_offset", "_sort", "_summary", "_elements", "_total", "_revinclude"}
        assert listed[rtype]["searchRevInclude"] == [f"PractitionerRole:{rtype.lower()}"]
