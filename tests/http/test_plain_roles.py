"""The plain-JSON API, /v1/practitioner-roles (reference/clinikehr/API.md): the example request, each
field rule, its error envelope, and the FHIR PractitionerRole each role is stored as."""

from __future__ import annotations

import json
import re
import typing as t

import pytest
import requests

from fhir_server.definitions import PLAIN_ROLE_PROFILE
from fhir_server.identifiers import ROLE_SYSTEM, is_valid_role_id
from fhir_server.outcome import Msg

from ..support import Server, fresh_cpn, practitioner

PATH = "/v1/practitioner-roles"
INSTANT_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
HL7_ROLES = "http://terminology.hl7.org/CodeSystem/practitioner-role"
OWN_ROLES = "https://fhir-server.example/fhir/CodeSystem/plain-json-practitioner-role"
CPN = fresh_cpn()  # a practitioner of these tests alone (see the fixture plain), so searches see only their roles
# The example request of API.md, on a practitioner the server knows; phone is not sent.
EXAMPLE = {
    "practitionerId": CPN, "role": "doctor", "organizationName": "Harbour Health",
    "specialty": ["Cardiology"], "locationName": "Main Campus", "email": "a.doctor@example.com",
    "availableDays": ["mon", "tue"], "availableStartTime": "08:00", "availableEndTime": "17:00",
}
FIELDS = ["id", "practitionerId", "role", "organizationName", "specialty", "locationName", "phone", "email",
          "availableDays", "availableStartTime", "availableEndTime", "createdAt"]


def text(msg: Msg, **values: t.Any) -> str:
    return msg.value.text.format(**values)


class Plain:
    """Calls as that API's clients make them: x-api-key and JSON, no userid."""

    def __init__(self, server: Server) -> None:
        self.base = server.base_url
        self.headers = {"x-api-key": server.api_key, "Content-Type": "application/json"}

    def post(self, body: t.Any = None, *, data: str | bytes | None = None, headers: dict[str, str] | None = None) -> requests.Response:
        payload = data if data is not None else json.dumps(body)
        return requests.post(self.base + PATH, data=payload, headers={**self.headers, **(headers or {})}, timeout=30)

    def get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.get(self.base + path, headers={**self.headers, **(headers or {})}, timeout=30)


@pytest.fixture(scope="module")
def plain(server: Server, api) -> Plain:
    assert api.post("/Practitioner", practitioner(CPN)).status_code == 201
    return Plain(server)


@pytest.fixture(scope="module")
def example(plain: Plain) -> requests.Response:
    response = plain.post(EXAMPLE)
    assert response.status_code == 201, response.text
    return response


def assert_meta(response: requests.Response, status: int) -> None:
    meta = response.json()["meta"]
    assert list(meta) == ["requestId", "timestamp", "status", "rateLimitTotal", "rateLimitRemaining", "rateLimitReset"]
    assert meta["requestId"] == response.headers["X-Request-Id"]
    assert meta["requestId"].startswith("req_")
    assert INSTANT_MS.fullmatch(meta["timestamp"])
    assert meta["status"] == status == response.status_code
    assert meta["rateLimitTotal"] == int(response.headers["RateLimit-Limit"])
    assert meta["rateLimitRemaining"] == int(response.headers["RateLimit-Remaining"])
    assert meta["rateLimitReset"] == int(response.headers["RateLimit-Reset"])


# --- the example of API.md -------------------------------------------------------------------------

def test_the_example_request_gets_201_and_the_envelope_of_api_md(example: requests.Response, server: Server) -> None:
    body = example.json()
    assert list(body) == ["data", "meta"]
    data = body["data"]
    assert list(data) == FIELDS
    assert is_valid_role_id(data["id"])
    assert INSTANT_MS.fullmatch(data["createdAt"])
    assert data == {**EXAMPLE, "id": data["id"], "phone": None, "createdAt": data["createdAt"]}
    assert_meta(example, 201)
    assert example.headers["Content-Type"] == "application/json; charset=utf-8"
    assert example.headers["Location"] == f"{server.base_url}{PATH}/{data['id']}"


def test_get_returns_the_same_envelope(plain: Plain, example: requests.Response) -> None:
    created = example.json()["data"]
    response = plain.get(f"{PATH}/{created['id']}")
    assert response.status_code == 200
    assert response.json()["data"] == created
    assert_meta(response, 200)


def test_the_fhir_view_is_the_mapping_of_api_md(api, example: requests.Response) -> None:
    data = example.json()["data"]
    response = api.get(f"/PractitionerRole/{data['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == 'W/"1"'
    assert response.json() == {
        "resourceType": "PractitionerRole",
        "id": data["id"],
        "meta": {"versionId": "1", "lastUpdated": data["createdAt"], "profile": [PLAIN_ROLE_PROFILE]},
        "identifier": [{"use": "official", "system": ROLE_SYSTEM, "value": data["id"]}],
        "active": True,
        "practitioner": {"reference": f"Practitioner/{CPN}", "display": "Test Bundle"},
        "organization": {"display": "Harbour Health"},
        "code": [{"coding": [{"system": HL7_ROLES, "code": "doctor", "display": "Doctor"}]}],
        "specialty": [{"text": "Cardiology"}],
        "location": [{"display": "Main Campus"}],
        "telecom": [{"system": "email", "value": "a.doctor@example.com", "use": "work"}],
        "availableTime": [{"daysOfWeek": ["mon", "tue"], "availableStartTime": "08:00:00", "availableEndTime": "17:00:00"}],
    }


def test_fhir_search_finds_it(api, example: requests.Response) -> None:
    role_id = example.json()["data"]["id"]
    by_practitioner = api.get("/PractitionerRole", params={"practitioner": CPN, "_count": "1000"}).json()
    assert role_id in [e["resource"]["id"] for e in by_practitioner["entry"]]
    by_role = api.get("/PractitionerRole", params={"practitioner": CPN, "role": f"{HL7_ROLES}|doctor"}).json()
    assert role_id in [e["resource"]["id"] for e in by_role["entry"]]
    by_id = api.get("/PractitionerRole", params={"practitioner": CPN, "identifier": f"{ROLE_SYSTEM}|{role_id}"}).json()
    assert [e["resource"]["id"] for e in by_id["entry"]] == [role_id]


@pytest.mark.parametrize("role, system, display", [
    ("nurse", HL7_ROLES, "Nurse"), ("pharmacist", HL7_ROLES, "Pharmacist"),
    ("admin", OWN_ROLES, "Administrator"), ("consultant", OWN_ROLES, "Consultant"),
])
def test_each_role_is_coded_from_the_published_terminology(plain: Plain, api, role: str, system: str, display: str) -> None:
    created = plain.post({"practitionerId": CPN, "role": role})
    assert created.status_code == 201, created.text
    resource = api.get(f"/PractitionerRole/{created.json()['data']['id']}").json()
    assert resource["code"] == [{"coding": [{"system": system, "code": role, "display": display}]}]


def test_the_server_publishes_its_role_code_system_and_value_set(api) -> None:
    code_system = api.get("/CodeSystem", params={"url": OWN_ROLES}).json()["entry"][0]["resource"]
    assert [c["code"] for c in code_system["concept"]] == ["admin", "consultant"]
    expansion = api.get("/ValueSet/$expand", params={"url": code_system["valueSet"]}).json()["expansion"]
    assert [(c["system"], c["code"]) for c in expansion["contains"]] == [
        (HL7_ROLES, "doctor"), (HL7_ROLES, "nurse"), (HL7_ROLES, "pharmacist"), (OWN_ROLES, "admin"), (OWN_ROLES, "consultant")]
    profile = api.get("/StructureDefinition", params={"url": PLAIN_ROLE_PROFILE}).json()["entry"][0]["resource"]
    assert profile["type"] == "PractitionerRole"


def test_fields_not_sent_come_back_null(plain: Plain) -> None:
    response = plain.post({"practitionerId": CPN, "role": "nurse"})
    assert response.status_code == 201
    data = response.json()["data"]
    assert {k: v for k, v in data.items() if k not in ("id", "createdAt")} == {
        "practitionerId": CPN, "role": "nurse", "organizationName": None, "specialty": None, "locationName": None,
        "phone": None, "email": None, "availableDays": None, "availableStartTime": None, "availableEndTime": None}
    assert plain.get(f"{PATH}/{data['id']}").json()["data"] == data


def test_explicit_nulls_of_optional_fields_mean_not_given(plain: Plain) -> None:
    response = plain.post({"practitionerId": CPN, "role": "nurse", "phone": None, "specialty": None, "availableDays": None})
    assert response.status_code == 201
    assert response.json()["data"]["phone"] is None


def test_every_field_at_once(plain: Plain, api) -> None:
    body = {**EXAMPLE, "phone": "+64 9 555 0123", "specialty": ["Cardiology", "Internal medicine"],
            "availableDays": ["mon", "wed", "fri"], "availableStartTime": "00:00", "availableEndTime": "23:59"}
    response = plain.post(body)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert {k: data[k] for k in body} == body
    resource = api.get(f"/PractitionerRole/{data['id']}").json()
    assert resource["telecom"] == [{"system": "phone", "value": "+64 9 555 0123", "use": "work"},
                                   {"system": "email", "value": "a.doctor@example.com", "use": "work"}]


# --- field rules -----------------------------------------------------------------------------------

NOT_ONE_OF_ROLES = text(Msg.FIELD_NOT_ONE_OF, choices="doctor, nurse, pharmacist, admin, consultant")
NOT_A_DAY = text(Msg.FIELD_NOT_ONE_OF, choices="mon, tue, wed, thu, fri, sat, sun")
RULES: dict[str, tuple[dict[str, t.Any], dict[str, list[str]]]] = {
    "practitionerId missing": ({"practitionerId": ...}, {"practitionerId": [text(Msg.FIELD_REQUIRED)]}),
    "practitionerId null": ({"practitionerId": None}, {"practitionerId": [text(Msg.FIELD_NULL)]}),
    "practitionerId a number": ({"practitionerId": 99}, {"practitionerId": [text(Msg.FIELD_NOT_STRING)]}),
    "practitionerId empty": ({"practitionerId": ""}, {"practitionerId": [text(Msg.FIELD_EMPTY)]}),
    "practitionerId too long": ({"practitionerId": "9" * 65}, {"practitionerId": [text(Msg.FIELD_TOO_LONG, max=64)]}),
    "practitioner unknown": ({"practitionerId": "99ZZZY"}, {"practitionerId": [text(Msg.FIELD_NO_PRACTITIONER)]}),
    "role missing": ({"role": ...}, {"role": [text(Msg.FIELD_REQUIRED)]}),
    "role not in the enum": ({"role": "surgeon"}, {"role": [NOT_ONE_OF_ROLES]}),
    "role in capitals": ({"role": "Doctor"}, {"role": [NOT_ONE_OF_ROLES]}),
    "role over 100 characters": ({"role": "d" * 101}, {"role": [text(Msg.FIELD_TOO_LONG, max=100), NOT_ONE_OF_ROLES]}),
    "organizationName over 200": ({"organizationName": "o" * 201}, {"organizationName": [text(Msg.FIELD_TOO_LONG, max=200)]}),
    "organizationName empty": ({"organizationName": ""}, {"organizationName": [text(Msg.FIELD_EMPTY)]}),
    "locationName over 200": ({"locationName": "l" * 201}, {"locationName": [text(Msg.FIELD_TOO_LONG, max=200)]}),
    "locationName not a string": ({"locationName": ["Main"]}, {"locationName": [text(Msg.FIELD_NOT_STRING)]}),
    "specialty not a list": ({"specialty": "Cardiology"}, {"specialty": [text(Msg.FIELD_NOT_LIST)]}),
    "specialty item not a string": ({"specialty": ["Cardiology", 7]}, {"specialty[1]": [text(Msg.FIELD_NOT_STRING)]}),
    "specialty item empty": ({"specialty": [""]}, {"specialty[0]": [text(Msg.FIELD_EMPTY)]}),
    "specialty item null": ({"specialty": ["Cardiology", None]}, {"specialty[1]": [text(Msg.FIELD_NULL)]}),
    "a day null": ({"availableDays": [None]}, {"availableDays[0]": [text(Msg.FIELD_NULL)]}),
    "blank organizationName": ({"organizationName": "  "}, {"organizationName": [text(Msg.FIELD_EMPTY)]}),
    "a control character": ({"locationName": "Main\u0001Campus"}, {"locationName": [text(Msg.FIELD_CONTROL)]}),
    "a NUL": ({"practitionerId": "99\u0000ZZZS"}, {"practitionerId": [text(Msg.FIELD_CONTROL)]}),
    "phone not a number": ({"phone": "call me"}, {"phone": [text(Msg.FIELD_PHONE)]}),
    "phone too short": ({"phone": "123"}, {"phone": [text(Msg.FIELD_PHONE)]}),
    "email without @": ({"email": "doctor.example.com"},
                        {"email": [text(Msg.FIELD_EMAIL, reason="An email address must have an @-sign.")]}),
    "email without domain": ({"email": "doctor@"},
                             {"email": [text(Msg.FIELD_EMAIL, reason="There must be something after the @-sign.")]}),
    "a day not in the enum": ({"availableDays": ["mon", "monday"]}, {"availableDays[1]": [NOT_A_DAY]}),
    "days not a list": ({"availableDays": "mon"}, {"availableDays": [text(Msg.FIELD_NOT_LIST)]}),
    "start time not HH:mm": ({"availableStartTime": "8:00"}, {"availableStartTime": [text(Msg.FIELD_TIME)]}),
    "end time past 23:59": ({"availableEndTime": "24:00"}, {"availableEndTime": [text(Msg.FIELD_TIME)]}),
    "time with seconds": ({"availableEndTime": "17:00:00"}, {"availableEndTime": [text(Msg.FIELD_TIME)]}),
    "start after end": ({"availableStartTime": "18:00", "availableEndTime": "09:00"},
                        {"availableStartTime": [text(Msg.FIELD_START_AFTER_END)]}),
    "start equal to end": ({"availableStartTime": "09:00", "availableEndTime": "09:00"},
                           {"availableStartTime": [text(Msg.FIELD_START_AFTER_END)]}),
    "an unknown field": ({"department": "Cardiology"}, {"department": [text(Msg.FIELD_UNKNOWN)]}),
    "a $-key": ({"$where": "1"}, {"$where": [text(Msg.FIELD_UNKNOWN)]}),
    "several at once": ({"role": "surgeon", "phone": "x", "availableDays": ["someday"]},
                        {"role": [NOT_ONE_OF_ROLES], "phone": [text(Msg.FIELD_PHONE)], "availableDays[0]": [NOT_A_DAY]}),
}


def _with(changes: dict[str, t.Any]) -> dict[str, t.Any]:
    body = {**EXAMPLE, **changes}
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize("case", RULES)
def test_each_field_rule_answers_422_naming_the_field_and_stores_nothing(plain: Plain, mongo, case: str) -> None:
    changes, fields = RULES[case]
    before = mongo["practitioner_roles"].count_documents({})
    response = plain.post(_with(changes))
    assert response.status_code == 422, response.text
    body = response.json()
    assert list(body) == ["error", "meta"]
    assert body["error"] == {
        "code": "UNPROCESSABLE_ENTITY",
        "message": "; ".join(f"{name}: {message}" for name, messages in fields.items() for message in messages),
        "fields": fields,
    }
    assert_meta(response, 422)
    assert mongo["practitioner_roles"].count_documents({}) == before


# --- the error envelope ----------------------------------------------------------------------------

def error_of(response: requests.Response) -> dict[str, t.Any]:
    body = response.json()
    assert list(body) == ["error", "meta"]
    assert body["meta"]["requestId"] == response.headers["X-Request-Id"]
    assert body["meta"]["status"] == response.status_code
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return t.cast(dict[str, t.Any], body["error"])


def test_malformed_json_is_400(plain: Plain, mongo) -> None:
    before = mongo["practitioner_roles"].count_documents({})
    truncated = '{"role": "doctor", "practitionerId": '
    response = plain.post(data=truncated)
    assert response.status_code == 400
    assert error_of(response) == {"code": "BAD_REQUEST", "fields": {},
                                  "message": text(Msg.MALFORMED_JSON, detail=f"Expecting value at line 1 column {len(truncated) + 1}")}
    assert mongo["practitioner_roles"].count_documents({}) == before


@pytest.mark.parametrize("body", ['{"practitionerId": "\\ud800", "role": "doctor"}', '{"\\udfff": 1}'])
def test_an_unpaired_surrogate_escape_is_400(plain: Plain, mongo, body: str) -> None:
    before = mongo["practitioner_roles"].count_documents({})
    response = plain.post(data=body)
    assert response.status_code == 400
    assert error_of(response)["message"] == text(Msg.MALFORMED_JSON, detail="a \\u escape of an unpaired surrogate is not text")
    assert mongo["practitioner_roles"].count_documents({}) == before


def test_an_integer_past_pythons_digit_limit_is_read_and_refused_as_not_a_string(plain: Plain, mongo) -> None:
    before = mongo["practitioner_roles"].count_documents({})
    response = plain.post(data='{"practitionerId": "99ZZZS", "role": "doctor", "phone": ' + "1" * 5000 + "}")
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"phone": [text(Msg.FIELD_NOT_STRING)]}
    assert mongo["practitioner_roles"].count_documents({}) == before


@pytest.mark.parametrize("body", ["[]", '"doctor"', "null", "3"])
def test_a_body_that_is_not_an_object_is_400(plain: Plain, body: str) -> None:
    response = plain.post(data=body)
    assert response.status_code == 400
    assert error_of(response)["message"] == text(Msg.NOT_AN_OBJECT)


def test_a_body_that_is_not_json_content_is_415(plain: Plain) -> None:
    response = plain.post(data="practitionerId=99ZZZS", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert error_of(response) == {"code": "UNSUPPORTED_MEDIA_TYPE", "message": text(Msg.PLAIN_MEDIA_TYPE), "fields": {}}


def test_without_a_key_401_and_with_an_unknown_key_403(plain: Plain, mongo) -> None:
    before = mongo["practitioner_roles"].count_documents({})
    missing = requests.post(plain.base + PATH, json=EXAMPLE, timeout=30)
    assert missing.status_code == 401
    assert error_of(missing) == {"code": "UNAUTHORIZED", "message": text(Msg.API_KEY_MISSING), "fields": {}}
    unknown = plain.post(EXAMPLE, headers={"x-api-key": "hpi_not-a-key"})
    assert unknown.status_code == 403
    assert error_of(unknown) == {"code": "FORBIDDEN", "message": text(Msg.API_KEY_UNKNOWN), "fields": {}}
    assert missing.json()["meta"]["rateLimitTotal"] is None  # not counted: nobody to count against
    assert mongo["practitioner_roles"].count_documents({}) == before


def test_no_userid_is_needed(plain: Plain) -> None:
    assert "userid" not in plain.headers
    assert plain.post({"practitionerId": CPN, "role": "admin"}).status_code == 201


def test_a_role_this_api_did_not_create_is_404(plain: Plain) -> None:
    for role_id in ("R00000012-G", "R99999999-Z", "not-an-id"):
        response = plain.get(f"{PATH}/{role_id}")
        assert response.status_code == 404
        assert error_of(response) == {"code": "NOT_FOUND", "message": text(Msg.PLAIN_NOT_FOUND, id=role_id), "fields": {}}


def test_other_methods_and_paths_answer_in_the_envelope(plain: Plain) -> None:
    put = requests.put(plain.base + PATH, json=EXAMPLE, headers=plain.headers, timeout=30)
    assert put.status_code == 405
    assert error_of(put)["code"] == "METHOD_NOT_ALLOWED"
    assert set(put.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    unknown = plain.get("/v1/practitioners")
    assert unknown.status_code == 404
    assert error_of(unknown) == {"code": "NOT_FOUND", "message": text(Msg.UNKNOWN_ROUTE, method="GET", path="/v1/practitioners"),
                                 "fields": {}}


def test_a_body_over_the_size_limit_is_413(plain: Plain) -> None:
    response = plain.post({**EXAMPLE, "organizationName": "x" * 70_000})
    assert response.status_code == 413
    assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"


def test_fhir_updates_apply_the_hpi_rules_so_such_a_role_stays_as_created(plain: Plain, example: requests.Response, api) -> None:
    """The HPI's update rules apply on /PractitionerRole: such a role cannot pass them, and is left unchanged."""
    data = example.json()["data"]
    resource = api.get(f"/PractitionerRole/{data['id']}").json()
    response = api.put(f"/PractitionerRole/{data['id']}", {**resource, "telecom": []}, if_match='W/"1"')
    assert response.status_code == 422
    assert plain.get(f"{PATH}/{data['id']}").json()["data"] == data


@pytest.mark.parametrize("prefix", ["v1/", "/v1/", "%761/", "v1%2F"])
def test_a_bundle_entry_cannot_call_this_api(plain: Plain, api, example: requests.Response, prefix: str) -> None:
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"{prefix}practitioner-roles/{example.json()['data']['id']}"}}]}
    response = api.post("/", batch)
    assert response.status_code == 200
    entry = response.json()["entry"][0]
    assert "resource" not in entry
    assert entry["response"]["status"] == "400 Bad Request"
    assert [i["diagnostics"] for i in entry["response"]["outcome"]["issue"]] == [text(Msg.BUNDLE_ENTRY_PLAIN_API, index=0)]
