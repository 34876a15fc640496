"""Sizes and numbers over HTTP: every array and string of a FHIR resource and every /v1 list has a
cap with its own message, and a decimal is stored and served digit for digit, or refused.

Bodies with decimals are written as text here (never through json.dumps, which would pass them
through floats), and responses are checked as text for the same reason.
"""

from __future__ import annotations

import decimal
import json
import re
import threading
import typing as t

import pytest
import requests

from fhir_server import identifiers as ids
from fhir_server.outcome import Msg
from fhir_server.validation.json_body import Limits
from fhir_server.validation.plain_role import MAX_DAYS, MAX_SPECIALTIES

from ..support import (
    Api,
    checked_ids,
    fresh_cpn,
    fresh_role,
    outcome_expressions,
    outcome_messages,
    practitioner,
    stored_counts,
    text,
)

CAP = Limits().max_array_items  # the test server runs with the default settings
LONGEST = Limits().max_string_length
SYSTEMS = {"Practitioner": ids.PERSON_SYSTEM, "Organization": ids.ORGANISATION_SYSTEM, "Location": ids.FACILITY_SYSTEM}
EXTENSION = "http://example.org/fhir/StructureDefinition/measure"
NUMBER = "__NUMBER__"  # where a test writes a number into a body's text


_FRESH = {"Organization": checked_ids("GSQ"), "Location": checked_ids("FSQ")}  # a series of this module's own
_lock = threading.Lock()


def fresh_id(rtype: str) -> str:
    if rtype == "Practitioner":
        return fresh_cpn()
    with _lock:
        return next(_FRESH[rtype])


def new_record(rtype: str, **more: t.Any) -> dict[str, t.Any]:
    value = fresh_id(rtype)
    record: dict[str, t.Any] = {"resourceType": rtype, "identifier": [{"use": "official", "system": SYSTEMS[rtype], "value": value}]}
    record["name"] = [{"family": f"Sizes {value}", "given": ["Pat"]}] if rtype == "Practitioner" else f"Sizes {rtype} {value}"
    return {**record, **more}


def with_number(doc: dict[str, t.Any], number: str) -> str:
    """``doc`` as JSON text, its ``NUMBER`` placeholder replaced by ``number`` exactly as written."""
    body = json.dumps(doc)
    assert body.count(f'"{NUMBER}"') == 1
    return body.replace(f'"{NUMBER}"', number)


def references_held(mongo: t.Any) -> int:
    return mongo["reference_resources"].count_documents({})


# --- FHIR arrays ------------------------------------------------------------------------------------

def _emails(n: int) -> list[dict[str, t.Any]]:
    return [{"system": "email", "value": f"sizes{i}@example.org", "use": "work"} for i in range(n)]


# For each type the server accepts, one repeating element filled to a number of items.
FILLED: dict[str, t.Callable[[int], tuple[dict[str, t.Any], str]]] = {
    "PractitionerRole": lambda n: (fresh_role(telecom=_emails(n)), "PractitionerRole.telecom"),
    "Practitioner": lambda n: (new_record("Practitioner", name=[{"family": "Sizes", "given": [f"G{i}" for i in range(n)]}]),
                               "Practitioner.name[0].given"),
    "Organization": lambda n: (new_record("Organization", alias=[f"Alias {i}" for i in range(n)]), "Organization.alias"),
    "Location": lambda n: (new_record("Location", alias=[f"Alias {i}" for i in range(n)]), "Location.alias"),
}


@pytest.mark.parametrize("rtype", list(FILLED))
def test_an_array_past_the_cap_is_400_with_its_path_and_nothing_is_stored(api: Api, mongo, rtype: str) -> None:
    doc, path = FILLED[rtype](CAP + 1)
    before = stored_counts(mongo), references_held(mongo)
    response = api.post(f"/{rtype}", doc)
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.TOO_MANY_ITEMS, element=path, count=CAP + 1, limit=CAP)]
    assert outcome_expressions(response) == [path]
    assert response.json()["issue"][0]["code"] == "too-costly"
    assert (stored_counts(mongo), references_held(mongo)) == before


@pytest.mark.parametrize("rtype", list(FILLED))
def test_an_array_at_the_cap_is_accepted(api: Api, rtype: str) -> None:
    doc, path = FILLED[rtype](CAP)
    response = api.post(f"/{rtype}", doc)
    assert response.status_code == 201, response.text
    element = path.split(".", 1)[1]
    served = response.json()
    for part in re.split(r"\.|\[(\d+)\]", element):
        if part:
            served = served[int(part)] if part.isdigit() else served[part]
    assert len(served) == CAP


def test_an_array_past_the_cap_in_an_update_is_400_and_the_version_stays(api: Api, mongo) -> None:
    created = api.post("/Location", new_record("Location"))
    assert created.status_code == 201
    record = created.json()
    response = api.put(f"/Location/{record['id']}", {**record, "alias": ["x"] * (CAP + 1)}, if_match='W/"1"')
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.TOO_MANY_ITEMS, element="Location.alias", count=CAP + 1, limit=CAP)]
    assert mongo["reference_resources"].find_one({"_id": f"Location/{record['id']}"})["resource"]["meta"]["versionId"] == "1"


def test_every_array_past_the_cap_is_named_once(api: Api) -> None:
    doc = new_record("Location", alias=["a"] * (CAP + 1), type=[{"text": "t"}] * (CAP + 5))
    response = api.post("/Location", doc)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["Location.alias", "Location.type"]


# --- FHIR strings -----------------------------------------------------------------------------------

def test_a_string_past_the_cap_is_400_and_at_the_cap_is_accepted(api: Api, mongo) -> None:
    before = references_held(mongo)
    response = api.post("/Location", new_record("Location", description="d" * (LONGEST + 1)))
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.STRING_TOO_LONG, element="Location.description", length=LONGEST + 1, limit=LONGEST)]
    assert outcome_expressions(response) == ["Location.description"]
    assert references_held(mongo) == before
    at_cap = api.post("/Location", new_record("Location", description="d" * LONGEST))
    assert at_cap.status_code == 201
    assert at_cap.json()["description"] == "d" * LONGEST


def test_a_long_string_in_a_role_is_400_with_its_path(api: Api, mongo) -> None:
    before = stored_counts(mongo)
    role = fresh_role(telecom=[{"system": "email", "value": "x" * (LONGEST + 1), "use": "work"}])
    response = api.create(role)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["PractitionerRole.telecom[0].value"]
    assert stored_counts(mongo) == before


# --- /v1 lists ---------------------------------------------------------------------------------------

def _plain(api: Api, doc: dict[str, t.Any]) -> requests.Response:
    return api.session.post(f"{api.base}/v1/practitioner-roles", data=json.dumps(doc), timeout=30,
                            headers={"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def plain_practitioner(api: Api) -> str:
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    return cpn


@pytest.mark.parametrize("name, items, cap", [
    ("specialty", [f"Specialty {i}" for i in range(MAX_SPECIALTIES + 1)], MAX_SPECIALTIES),
    ("specialty", ["Cardiology"] * 2_000, MAX_SPECIALTIES),
    ("availableDays", ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "mon"], MAX_DAYS),
])
def test_a_v1_list_past_its_cap_is_422_in_the_envelope_and_nothing_is_stored(api: Api, mongo, plain_practitioner: str,
                                                                              name: str, items: list[str], cap: int) -> None:
    before = stored_counts(mongo)
    response = _plain(api, {"practitionerId": plain_practitioner, "role": "doctor", name: items})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "UNPROCESSABLE_ENTITY"
    assert error["fields"] == {name: [text(Msg.FIELD_TOO_MANY, max=cap)]}
    assert stored_counts(mongo) == before


def test_v1_lists_at_their_caps_are_stored(api: Api, plain_practitioner: str) -> None:
    specialties = [f"Specialty {i}" for i in range(MAX_SPECIALTIES)]
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    response = _plain(api, {"practitionerId": plain_practitioner, "role": "nurse", "specialty": specialties, "availableDays": days})
    assert response.status_code == 201, response.text
    data = api.session.get(response.headers["Location"], timeout=30).json()["data"]
    assert (data["specialty"], data["availableDays"]) == (specialties, days)


def test_a_long_specialty_is_422(api: Api, plain_practitioner: str) -> None:
    response = _plain(api, {"practitionerId": plain_practitioner, "role": "doctor", "specialty": ["s" * 201]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"specialty[0]": [text(Msg.FIELD_TOO_LONG, max=200)]}


# --- decimals ----------------------------------------------------------------------------------------

# Each kept digit for digit: in the response text, in the database (Decimal128), and when read again.
EXACT = ["1.50", "0.1", "-0.0", "0.00", "12345678901234567890.123456789", "-41.2865", "0.0000001", "1E+3", "1.50E+3",
         "9999999999999999999999999999999999", "0.00000000000000000000000000000000001",
         "1.000000000000000000000000000000000E+6144", "0." + "0" * 6175 + "1"]  # the largest and smallest exponents


def _located(altitude: str) -> tuple[dict[str, t.Any], str]:
    """A Location at Wellington's latitude and longitude, and its JSON text with ``altitude`` as written."""
    doc = new_record("Location", position={"longitude": NUMBER, "latitude": -41.2865, "altitude": 1})
    body = with_number(doc, "174.7762").replace('"altitude": 1}', f'"altitude": {altitude}}}')
    return doc, body


def _stored_position(mongo: t.Any, rid: str) -> dict[str, t.Any]:
    return mongo["reference_resources"].find_one({"_id": f"Location/{rid}"})["resource"]["position"]


@pytest.mark.parametrize("number", EXACT)
def test_a_decimal_is_stored_and_served_exactly_as_sent(api: Api, mongo, number: str) -> None:
    doc, body = _located(number)
    response = api.post("/Location", data=body)
    assert response.status_code == 201, response.text
    expected = f'"position":{{"longitude":174.7762,"latitude":-41.2865,"altitude":{number}}}'
    assert expected in response.text
    rid = doc["identifier"][0]["value"]
    held = _stored_position(mongo, rid)
    # The database holds Decimal128 with the same sign, digits and exponent.
    assert [str(held[k]) for k in ("longitude", "latitude")] == ["174.7762", "-41.2865"]
    assert held["altitude"].to_decimal().as_tuple() == decimal.Decimal(number).as_tuple()
    assert expected in api.get(f"/Location/{rid}").text
    assert expected in api.get(f"/Location/{rid}/_history/1").text
    assert expected in api.get(f"/Location?identifier={rid}").text
    pretty = api.get(f"/Location/{rid}?_pretty=true").text
    assert expected.replace(":", ": ").replace(",", ", ") in pretty.replace("\n", "").replace("  ", "")


def test_integers_stay_integers(api: Api, mongo) -> None:
    doc, body = _located("120")
    assert api.post("/Location", data=body).status_code == 201
    held = _stored_position(mongo, doc["identifier"][0]["value"])
    assert held["altitude"] == 120 and type(held["altitude"]) is int


def test_an_update_that_only_adds_precision_is_a_new_version(api: Api, mongo) -> None:
    doc, body = _located("1.5")
    assert api.post("/Location", data=body).status_code == 201
    rid = doc["identifier"][0]["value"]
    updated = with_number({**doc, "id": rid}, "174.7762").replace('"altitude": 1}', '"altitude": 1.50}')
    response = api.session.put(f"{api.base}/Location/{rid}", data=updated, headers={"If-Match": 'W/"1"'}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == 'W/"2"'
    assert '"altitude":1.50' in response.text
    assert str(_stored_position(mongo, rid)["altitude"]) == "1.50"


REFUSED = [
    ("1e-999", Msg.NUMBER_SPELLING, "0.000000000000000000…00000000000000000001"),
    ("1.5e3", Msg.NUMBER_SPELLING, "1.5E+3"),
    ("1e3", Msg.NUMBER_SPELLING, "1E+3"),
    ("1E3", Msg.NUMBER_SPELLING, "1E+3"),
    ("15E+2", Msg.NUMBER_SPELLING, "1.5E+3"),
    ("1.5E-3", Msg.NUMBER_SPELLING, "0.0015"),
    ("0.15e-2", Msg.NUMBER_SPELLING, "0.0015"),
    ("1.000000000000000000000000000000000", None, None),  # 34 digits: kept
    ("1.0000000000000000000000000000000000", Msg.NUMBER_NOT_STORABLE, None),  # 35 digits
    ("1E+6112", Msg.NUMBER_NOT_STORABLE, None),
    ("0." + "0" * 6176 + "1", Msg.NUMBER_NOT_STORABLE, None),
    ("1e99999999999999999999", Msg.NUMBER_NOT_STORABLE, None),
]


@pytest.mark.parametrize("number, msg, spelling", REFUSED)
def test_a_number_that_would_not_come_back_as_written_is_400_and_nothing_is_stored(api: Api, mongo, number: str,
                                                                                    msg: Msg | None, spelling: str | None) -> None:
    doc, body = _located(number)
    before = references_held(mongo)
    response = api.post("/Location", data=body)
    if msg is None:
        assert response.status_code == 201
        assert f'"altitude":{number}}}' in response.text
        return
    assert response.status_code == 400
    shown = number if len(number) <= 40 else f"{number[:20]}…{number[-20:]}"
    assert outcome_messages(response) == [text(msg, number=shown, spelling=spelling or "")]
    assert outcome_expressions(response) == ["Location.position.altitude"]
    assert references_held(mongo) == before


ROLE_DECIMALS = ["1.50", "12345678901234567890.123456789", "-0.0", "0.1", "-0"]


@pytest.fixture(scope="module")
def measured_role(api: Api) -> tuple[str, str]:
    """A PractitionerRole with an extension per decimal, and the text those extensions serve as."""
    role = fresh_role()
    role["extension"] += [{"url": f"{EXTENSION}-{n}", "valueDecimal": NUMBER} for n in range(len(ROLE_DECIMALS))]
    body = json.dumps(role)
    for number in ROLE_DECIMALS:
        body = body.replace(f'"{NUMBER}"', number, 1)
    response = api.post("/PractitionerRole", data=body)
    assert response.status_code == 201, response.text
    served = ",".join(f'{{"url":"{EXTENSION}-{n}","valueDecimal":{number}}}' for n, number in enumerate(ROLE_DECIMALS))
    assert served in response.text
    return response.json()["id"], served


def test_role_decimals_survive_read_vread_history_and_search(api: Api, mongo, measured_role: tuple[str, str]) -> None:
    rid, served = measured_role
    practitioner_ref = api.get(f"/PractitionerRole/{rid}").json()["practitioner"]["reference"]
    for path in (f"/PractitionerRole/{rid}", f"/PractitionerRole/{rid}/_history/1", f"/PractitionerRole/{rid}/_history",
                 f"/PractitionerRole?practitioner={practitioner_ref}&_id={rid}"):
        response = api.get(path)
        assert response.status_code == 200, (path, response.text)
        assert served in response.text, path
    held = mongo["practitioner_roles"].find_one({"_id": rid}) or mongo["practitioner_roles"].find_one({"resource.id": rid})
    values = [e["valueDecimal"] for e in held["resource"]["extension"] if e["url"].startswith(EXTENSION)]
    assert [str(v) for v in values] == ROLE_DECIMALS


def test_role_decimals_survive_a_batch_bundle(api: Api, measured_role: tuple[str, str]) -> None:
    rid, served = measured_role
    doc, location = _located("-41.2865")
    bundle = ('{"resourceType": "Bundle", "type": "batch", "entry": ['
              f'{{"request": {{"method": "GET", "url": "PractitionerRole/{rid}"}}}}, '
              f'{{"request": {{"method": "POST", "url": "Location"}}, "resource": {location}}}]}}')
    response = api.post("/", data=bundle)
    assert response.status_code == 200, response.text
    assert served in response.text
    assert '"position":{"longitude":174.7762,"latitude":-41.2865,"altitude":-41.2865}' in response.text
    assert [e["response"]["status"][:3] for e in response.json()["entry"]] == ["200", "201"]


def test_a_transaction_bundle_refuses_an_unkept_number_with_its_entry(api: Api, mongo) -> None:
    doc, location = _located("1e-7")
    before = references_held(mongo)
    bundle = ('{"resourceType": "Bundle", "type": "transaction", "entry": ['
              f'{{"request": {{"method": "POST", "url": "Location"}}, "resource": {location}}}]}}')
    response = api.post("/", data=bundle)
    assert response.status_code == 400
    assert text(Msg.NUMBER_SPELLING, number="1e-7", spelling="0.0000001") in outcome_messages(response)
    assert references_held(mongo) == before
