"""GET /PractitionerRole?… (SPEC.md §3.4): parameters, _include, paging, strict and lenient handling."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_server.outcome import Msg, issue
from fhir_server.service.search import MAX_OFFSET
from fhir_server.store.queries import MAX_CANDIDATES, Criterion, to_filter

from ..support import fresh_role, outcome_expressions, outcome_messages

ANZSCO = "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0"


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def search(api, **params) -> dict:
    response = api.get("/PractitionerRole", params=params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle


@pytest.fixture(scope="module")
def roles(api) -> dict[str, dict]:
    """Roles of practitioner 92ZZRE that no other test creates: active, ended, and at another place."""
    made = {
        "current": fresh_role(practitioner={"reference": "Practitioner/92ZZRE"}),
        "ended": fresh_role(practitioner={"reference": "Practitioner/92ZZRE"}, period={"start": "2001-01-01", "end": "2002-01-01"}),
        "elsewhere": fresh_role(practitioner={"reference": "Practitioner/92ZZRE"}, organization={"reference": "Organization/GZZ956-B"},
                                location=[{"reference": "Location/FZZ958-K"}]),
    }
    made["ended"]["extension"].append({"url": "http://hl7.org.nz/fhir/StructureDefinition/practitionerRole-status-reason",
                                       "valueCodeableConcept": {"coding": [{"system": "https://standards.digital.health.nz/ns/"
                                                                            "hpi-practitioner-role-status-reason-code", "code": "other"}]}})
    created = {}
    for name, body in made.items():
        response = api.create(body)
        assert response.status_code == 201, response.text
        created[name] = response.json()
    return created


def test_practitioner_finds_all_of_its_roles(api, roles):
    bundle = search(api, practitioner="92ZZRE")
    assert sorted(ids(bundle)) == sorted(r["id"] for r in roles.values())
    assert bundle["total"] == 3


@pytest.mark.parametrize("value", ["Practitioner/92ZZRE", "https://elsewhere.example/fhir/Practitioner/92ZZRE"])
def test_practitioner_may_be_a_reference(api, roles, value):
    assert sorted(ids(search(api, practitioner=value))) == sorted(r["id"] for r in roles.values())


def test_a_dormant_cpn_finds_the_same_roles_as_the_live_one(api):
    created = api.create(fresh_role(practitioner={"reference": "Practitioner/98ZZQJ"})).json()
    live, dormant = search(api, practitioner="98ZZQJ"), search(api, practitioner="90ZZGJ")
    assert created["id"] in ids(live)
    assert ids(live) == ids(dormant)


def test_practitioner_is_required(api, roles):
    response = api.get("/PractitionerRole", params={"organization": "GZZ998-G"})
    assert response.status_code == 422
    [found] = response.json()["issue"]
    assert found["diagnostics"] == "Practitioner required"
    assert found["details"]["coding"][0]["code"] == "EM07201"


@pytest.mark.parametrize("value", ["abc", "Practitioner/abc", "99ZZZZ,abc"])
def test_a_malformed_practitioner_is_the_igs_error_not_an_empty_bundle(api, value):
    """SPEC.md §3.4: "A PractitionerRole search request must include a valid hpi-person-id"."""
    response = api.get("/PractitionerRole", params={"practitioner": value})
    assert response.status_code == 422
    assert outcome_messages(response) == [issue(Msg.PRACTITIONER_INVALID).diagnostics]
    assert outcome_expressions(response) == ["PractitionerRole.practitioner"]


def test_an_unknown_practitioner_finds_nothing(api):
    bundle = search(api, practitioner="99ZZZZ")
    assert bundle["total"] == 0 and "entry" not in bundle  # FHIR JSON has no empty arrays


def test_organization_location_role_and_identifier_narrow_the_search(api, roles):
    elsewhere = roles["elsewhere"]
    assert ids(search(api, practitioner="92ZZRE", organization="GZZ956-B")) == [elsewhere["id"]]
    assert ids(search(api, practitioner="92ZZRE", location="Location/FZZ958-K")) == [elsewhere["id"]]
    code = elsewhere["code"][0]["coding"][0]["code"]
    assert ids(search(api, practitioner="92ZZRE", role=code)) == [elsewhere["id"]]
    assert ids(search(api, practitioner="92ZZRE", role=f"{ANZSCO}|{code}")) == [elsewhere["id"]]
    assert ids(search(api, practitioner="92ZZRE", role=f"http://snomed.info/sct|{code}")) == []
    identifier = f"https://standards.digital.health.nz/ns/hpi-practitionerrole-id|{elsewhere['id']}"
    assert ids(search(api, practitioner="92ZZRE", identifier=identifier)) == [elsewhere["id"]]
    assert ids(search(api, practitioner="92ZZRE", _id=elsewhere["id"])) == [elsewhere["id"]]


def test_comma_separated_values_are_alternatives(api, roles):
    wanted = [roles["current"]["id"], roles["elsewhere"]["id"]]
    assert sorted(ids(search(api, practitioner="92ZZRE", _id=",".join(wanted)))) == sorted(wanted)


def test_active_separates_current_and_ended_roles(api, roles):
    active = ids(search(api, practitioner="92ZZRE", active="true"))
    inactive = ids(search(api, practitioner="92ZZRE", active="false"))
    assert roles["ended"]["id"] in inactive and roles["ended"]["id"] not in active
    assert roles["current"]["id"] in active and roles["current"]["id"] not in inactive


def test_a_role_without_period_stored_inactive_is_not_active(api):
    assert ids(search(api, practitioner="99ZZZS", active="false")) == ["R00000015-C"]
    assert ids(search(api, practitioner="99ZZZS", active="true")) == []


def test_last_updated_finds_roles_by_when_they_were_stored(api, roles):
    stamp = roles["elsewhere"]["meta"]["lastUpdated"]
    assert roles["elsewhere"]["id"] in ids(search(api, practitioner="92ZZRE", _lastUpdated=f"ge{stamp}"))
    assert ids(search(api, practitioner="92ZZRE", _lastUpdated=f"gt{stamp}")) == []
    assert ids(search(api, practitioner="92ZZRE", _lastUpdated="lt2000-01-01")) == []
    assert len(ids(search(api, practitioner="92ZZRE", _lastUpdated=stamp[:4]))) == 3


def test_include_brings_the_referenced_records(api, roles):
    bundle = search(api, practitioner="92ZZRE", _include=["PractitionerRole:practitioner", "PractitionerRole:organization",
                                                             "PractitionerRole:location"])
    included = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert included == {"Practitioner/92ZZRE", "Organization/GZZ998-G", "Organization/GZZ956-B", "Location/FZZ961-K",
                        "Location/FZZ958-K"}
    assert bundle["total"] == 3  # matches only
    assert all(e["fullUrl"].endswith(f"{e['resource']['resourceType']}/{e['resource']['id']}") for e in bundle["entry"])


def test_count_and_offset_page_with_links(api, roles):
    first = search(api, practitioner="92ZZRE", _count=2)
    assert len(ids(first)) == 2 and first["total"] == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert set(links) == {"self", "first", "next", "last"}
    assert links["last"] == links["next"]
    assert "practitioner=92ZZRE" in links["self"] and "_count=2" in links["self"]
    second = api.session.get(links["next"], timeout=10).json()
    assert len(ids(second)) == 1
    assert {link["relation"] for link in second["link"]} == {"self", "first", "previous", "last"}
    assert sorted(ids(first) + ids(second)) == sorted(r["id"] for r in roles.values())


def test_count_defaults_to_10_and_is_capped_at_50(api):
    practitioner = "91ZABY"
    for _ in range(12):
        assert api.create(fresh_role(practitioner={"reference": f"Practitioner/{practitioner}"})).status_code == 201
    assert len(ids(search(api, practitioner=practitioner))) == 10
    capped = search(api, practitioner=practitioner, _count=500)
    assert len(ids(capped)) == capped["total"] >= 12
    assert "_count=50" in capped["link"][0]["url"]


def test_count_zero_gives_only_the_total(api, roles):
    bundle = search(api, practitioner="92ZZRE", _count=0)
    assert bundle["total"] == 3 and "entry" not in bundle


def test_unknown_parameters_are_ignored_by_default_and_dropped_from_self(api, roles):
    bundle = search(api, practitioner="92ZZRE", colour="blue")
    assert bundle["total"] == 3
    assert "colour" not in bundle["link"][0]["url"]
    lenient = api.get("/PractitionerRole", params={"practitioner": "92ZZRE", "colour": "blue"}, headers={"Prefer": "handling=lenient"})
    assert lenient.json()["total"] == 3


def test_unknown_parameters_are_rejected_when_strict(api):
    response = api.get("/PractitionerRole", params={"practitioner": "92ZZRE", "colour": "blue", "_include": "PractitionerRole:endpoint"},
                       headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert outcome_messages(response) == [
        issue(Msg.SEARCH_PARAM_UNKNOWN, name="colour", type="PractitionerRole").diagnostics,
        issue(Msg.SEARCH_INCLUDE_UNKNOWN, value="PractitionerRole:endpoint", type="PractitionerRole").diagnostics,
    ]


@pytest.mark.parametrize("name, value", [("active", "maybe"), ("_count", "-1"), ("_offset", "x"), ("_offset", "9" * 30),
                                         ("_lastUpdated", "yesterday"), ("_lastUpdated", "ge9999-12-31T23:59:59.999+14:00"),
                                         ("_lastUpdated", "0000")])
def test_bad_values_are_400_even_when_lenient(api, name, value):
    response = api.get("/PractitionerRole", params={"practitioner": "92ZZRE", name: value})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value).diagnostics]


def test_searches_are_flat_filters_over_the_practitioner_index(mongo, roles):
    """SecantusDB uses an index only for a filter without top-level operators (its explain does not say)."""
    query, rest = to_filter([Criterion("practitioner", "any", ("92ZZRE",)), Criterion("active", "active_on", ("2026-01-01", True)),
                             Criterion("role", "any", ("x|y",))], "search.")
    assert query == {"search.practitioner": {"$in": ["92ZZRE"]}, "search.active.from": {"$lte": "2026-01-01"},
                     "search.active.to": {"$gte": "2026-01-01"}, "search.role": {"$in": ["x|y"]}}
    assert rest == []
    assert "search.practitioner_1__id_1" in mongo["practitioner_roles"].index_information()


def test_date_ranges_fold_into_one_flat_condition():
    a, b, c, d = (dt.datetime(2020 + n, 1, 1, tzinfo=dt.timezone.utc) for n in range(4))
    query, rest = to_filter([Criterion("practitioner", "any", ("92ZZRE",)), Criterion("_lastUpdated", "between", (a, None, True)),
                             Criterion("_lastUpdated", "between", (None, d, True)), Criterion("_lastUpdated", "between", (b, c, False))])
    assert query == {"practitioner": {"$in": ["92ZZRE"]}, "_lastUpdated": {"$gte": a, "$lt": d, "$not": {"$gte": b, "$lt": c}}}
    assert rest == []


def test_what_has_no_flat_form_is_left_to_the_application():
    day = ("2026-01-01", False)
    repeated = [Criterion("role", "any", ("a",)), Criterion("role", "any", ("b",))]
    query, rest = to_filter([Criterion("practitioner", "any", ("92ZZRE",)), Criterion("active", "active_on", day), *repeated])
    assert query == {"practitioner": {"$in": ["92ZZRE"]}, "role": {"$in": ["a"]}}
    assert rest == [Criterion("active", "active_on", day), repeated[1]]


def test_repeated_parameters_all_hold(api, roles):
    elsewhere = roles["elsewhere"]
    code = elsewhere["code"][0]["coding"][0]["code"]
    assert ids(search(api, practitioner="92ZZRE", role=[code, f"{ANZSCO}|{code}"])) == [elsewhere["id"]]
    assert ids(search(api, practitioner="92ZZRE", role=[code, roles["current"]["code"][0]["coding"][0]["code"]])) == []
    both = search(api, practitioner="92ZZRE", organization=["GZZ956-B", "Organization/GZZ956-B"], active=["true", "true"])
    assert ids(both) == [elsewhere["id"]] and both["total"] == 1
    assert ids(search(api, practitioner="92ZZRE", organization=["GZZ956-B", "GZZ998-G"])) == []


def test_last_updated_ne_and_repeated_ranges(api, roles):
    stamp = roles["elsewhere"]["meta"]["lastUpdated"]
    everyone = sorted(r["id"] for r in roles.values())
    assert sorted(ids(search(api, practitioner="92ZZRE", _lastUpdated=f"ne{stamp}"))) == sorted(set(everyone) - {roles["elsewhere"]["id"]})
    assert sorted(ids(search(api, practitioner="92ZZRE", _lastUpdated=["ge2000", f"le{stamp}"]))) == everyone
    assert ids(search(api, practitioner="92ZZRE", _lastUpdated=["ge2000", "lt2000"])) == []
    others = [r["meta"]["lastUpdated"] for r in roles.values() if r is not roles["elsewhere"]]
    twice = search(api, practitioner="92ZZRE", _lastUpdated=[f"ne{stamp}", f"ne{others[0]}"])
    assert [r["meta"]["lastUpdated"] for r in (e["resource"] for e in twice.get("entry", []))] == others[1:]


def test_inactive_roles_page_with_a_total(api, roles):
    first = search(api, practitioner="92ZZRE", active="false", _count=1)
    assert ids(first) == [roles["ended"]["id"]] and first["total"] == 1
    assert "next" not in {link["relation"] for link in first["link"]}


@pytest.fixture
def crowded_practitioner(mongo):
    """A practitioner with more roles than a search filters in the application, written directly."""
    practitioner = "99ZZXQ"
    docs = [{"_id": f"X{n:08d}", "vid": 1, "identifiers": [f"crowded|{n}"],
             "search": {"practitioner": [practitioner], "active": {"from": "0001-01-01", "to": "9999-12-31"}, "role": ["r"]},
             "resource": {"resourceType": "PractitionerRole", "id": f"X{n:08d}", "meta": {"versionId": "1"}}}
            for n in range(MAX_CANDIDATES + 1)]
    mongo["practitioner_roles"].insert_many(docs)
    yield practitioner
    mongo["practitioner_roles"].delete_many({"search.practitioner": practitioner})


def test_a_search_with_too_many_roles_to_filter_is_refused(api, crowded_practitioner):
    flat = search(api, practitioner=crowded_practitioner, role="r", _count=1)
    assert flat["total"] == MAX_CANDIDATES + 1
    for params, names in (({"active": "false"}, "active"), ({"role": ["r", "s"]}, "role")):
        response = api.get("/PractitionerRole", params={"practitioner": crowded_practitioner, **params})
        assert response.status_code == 400
        assert outcome_messages(response) == [issue(Msg.SEARCH_TOO_BROAD, limit=MAX_CANDIDATES, params=names).diagnostics]


def test_offset_is_bounded(api, roles):
    assert ids(search(api, practitioner="92ZZRE", _offset=MAX_OFFSET)) == []
    response = api.get("/PractitionerRole", params={"practitioner": "92ZZRE", "_offset": MAX_OFFSET + 1})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.SEARCH_OFFSET_TOO_LARGE, limit=MAX_OFFSET).diagnostics]


@pytest.mark.parametrize("name, value", [("_count", "²"), ("_lastUpdated", "0001"), ("_lastUpdated", "0001-01-01T00:00:00+14:00"),
                                         ("_lastUpdated", "9999-12-31T23:59:59-14:00"), ("practitioner", "Organization/92ZZRE")])
def test_values_outside_what_can_be_searched_are_400_not_500(api, name, value):
    params = {"practitioner": "92ZZRE", name: value} if name != "practitioner" else {name: value}
    response = api.get("/PractitionerRole", params=params)
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value).diagnostics]


def test_last_updated_covers_the_precision_given(api, roles):
    stamp = roles["elsewhere"]["meta"]["lastUpdated"]  # 2026-11-21T11:22:33.456Z
    for cut in (stamp[:19] + "Z", stamp[:16] + "Z"):
        assert roles["elsewhere"]["id"] in ids(search(api, practitioner="92ZZRE", _lastUpdated=cut)), cut


def test_an_unsupported_modifier_is_400_even_when_lenient(api, roles):
    response = api.get("/PractitionerRole", params={"practitioner": "92ZZRE", "active:not": "true"})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.SEARCH_MODIFIER_UNSUPPORTED, name="active:not").diagnostics]


def test_include_may_name_its_target_type(api, roles):
    bundle = search(api, practitioner="92ZZRE", _include="PractitionerRole:practitioner:Practitioner")
    assert ids(bundle, "include") == ["92ZZRE"]


def test_prefer_parameters_after_a_semicolon_are_read(api):
    response = api.get("/PractitionerRole", params={"practitioner": "92ZZRE", "colour": "blue"},
                       headers={"Prefer": "return=minimal; handling=strict"})
    assert response.status_code == 400
