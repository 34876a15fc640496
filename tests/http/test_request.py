"""What happens to a request before any HPI rule: media type, size, JSON, structure, safe keys, ids."""

from __future__ import annotations

import json

import pytest

from fhir_server.outcome import Msg

from ..support import fresh_role, outcome_expressions, outcome_messages, stored_counts, text


@pytest.mark.parametrize("body", [b"{", b'{"resourceType": "PractitionerRole",}', b"\xff\xfe{}", b'{"a": NaN}',
                                  b'{"resourceType": "PractitionerRole", "resourceType": "Practitioner"}'])
def test_malformed_json_is_400(api, mongo, body):
    before = stored_counts(mongo)
    response = api.post("/PractitionerRole", data=body)
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"].startswith(text(Msg.MALFORMED_JSON, detail=""))
    assert stored_counts(mongo) == before


def test_deeply_nested_json_is_400(api):
    response = api.post("/PractitionerRole", data="[" * 5000 + "]" * 5000)
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.TOO_DEEP, limit=32)]


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/fhir+xml", None])
def test_wrong_content_type_is_415(api, content_type):
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    response = api.post("/PractitionerRole", fresh_role(), headers=headers)
    assert response.status_code == 415
    assert outcome_messages(response) == [text(Msg.UNSUPPORTED_MEDIA_TYPE)]


def test_plain_json_content_type_is_accepted(api):
    response = api.post("/PractitionerRole", fresh_role(), headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201


def test_oversized_body_is_413(api, mongo):
    before = stored_counts(mongo)
    role = fresh_role(text={"status": "generated", "div": "<div>" + "x" * 70_000 + "</div>"})
    response = api.create(role)
    assert response.status_code == 413
    assert outcome_messages(response) == [text(Msg.TOO_LARGE)]
    assert stored_counts(mongo) == before


def test_structurally_invalid_fhir_is_400_with_a_path_per_problem(api, mongo):
    before = stored_counts(mongo)
    role = fresh_role(active="yes", unknownThing=1)
    role["telecom"] = [{"system": "phone", "value": "1324654788", "rank": "2"}]
    response = api.create(role)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["PractitionerRole.unknownThing"]
    del role["unknownThing"]
    response = api.create(role)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["PractitionerRole.active", "PractitionerRole.telecom[0].rank"]
    assert outcome_messages(response) == [text(Msg.WRONG_JSON_TYPE, expected="boolean", got="string"),
                                          text(Msg.WRONG_JSON_TYPE, expected="number", got="string")]
    assert stored_counts(mongo) == before


def test_null_values_are_400_at_their_paths(api):
    response = api.create(fresh_role(period={"start": None}, telecom=[None]))
    assert response.status_code == 400
    assert outcome_expressions(response) == ["PractitionerRole.period.start", "PractitionerRole.telecom[0]"]
    assert set(outcome_messages(response)) == {text(Msg.NULL_VALUE)}


@pytest.mark.parametrize("value", ["a\u0000b", "\u0000", "bell\u0007", "esc\u001b[2J", "vt\u000b"])
def test_control_characters_in_strings_are_400_at_their_paths(api, mongo, value):
    """FHIR strings may hold no character below U+0020 but tab, CR and LF (found by `make reliability`:
    a NUL in a role's code text was stored)."""
    before = stored_counts(mongo)
    role = fresh_role()
    role["code"][0]["text"] = value
    response = api.create(role)
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.CONTROL_CHARACTER)]
    assert outcome_expressions(response) == ["PractitionerRole.code[0].text"]
    assert stored_counts(mongo) == before


def test_tab_and_line_breaks_in_strings_are_accepted(api):
    role = fresh_role()
    role["code"][0]["text"] = "Medical\tOncologist\r\n"
    assert api.create(role).status_code == 201


def test_an_integer_past_pythons_digit_limit_is_400_not_500(api, mongo):
    """Found by `make reliability`: json.loads raised a plain ValueError for integers of more than
    4,300 digits, which reached the 500 handler. Such a number is now read, and refused as one the
    store cannot hold exactly."""
    before = stored_counts(mongo)
    body = json.dumps(fresh_role())[:-1] + ', "n": ' + "9" * 5000 + "}"
    response = api.post("/PractitionerRole", data=body)
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.NUMBER_NOT_STORABLE, number="9" * 20 + "…" + "9" * 20)]
    assert outcome_expressions(response) == ["PractitionerRole.n"]
    assert stored_counts(mongo) == before


@pytest.mark.parametrize("doc, expression", [
    ({"resourceType": "Practitioner"}, "PractitionerRole.resourceType"),
    ({"active": True}, "PractitionerRole.resourceType"),
])
def test_wrong_or_missing_resource_type_is_400(api, doc, expression):
    response = api.create(doc)
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.WRONG_RESOURCE_TYPE, expected="PractitionerRole")]
    assert outcome_expressions(response) == [expression]


def test_a_json_array_is_400(api):
    response = api.create([fresh_role()])
    assert response.status_code == 400 and outcome_messages(response) == [text(Msg.NOT_AN_OBJECT)]


@pytest.mark.parametrize("key", ["$where", "a.b", "$set", "nul\u0000"])
def test_keys_mongodb_would_read_as_operators_are_rejected(api, mongo, key):
    before = stored_counts(mongo)
    role = fresh_role()
    role["practitioner"][key] = "x"
    response = api.create(role)
    assert response.status_code == 400
    assert outcome_messages(response) == [text(Msg.UNSAFE_KEY, key=key)]
    assert outcome_expressions(response) == ["PractitionerRole.practitioner"]
    assert stored_counts(mongo) == before


def test_every_response_has_a_request_id_and_echoes_the_correlation_id(api):
    first = api.get("/PractitionerRole/R00000029-P", headers={"X-Correlation-Id": "abc-123"})
    second = api.get("/PractitionerRole/nope")
    assert first.headers["X-Correlation-Id"] == "abc-123"
    assert "X-Correlation-Id" not in second.headers
    assert len({first.headers["X-Request-Id"], second.headers["X-Request-Id"]}) == 2


def test_unknown_route_is_an_operation_outcome(api):
    response = api.get("/Patient/123")
    assert response.status_code == 404
    assert outcome_messages(response) == [text(Msg.UNKNOWN_ROUTE, method="GET", path="/Patient/123")]


def test_delete_is_not_allowed(api):
    response = api.session.delete(api.base + "/PractitionerRole/R00000029-P")
    assert response.status_code == 405
    assert "DELETE" not in response.headers["Allow"]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert api.get("/PractitionerRole/R00000029-P").status_code == 200


def test_error_bodies_are_fhir_json(api):
    response = api.post("/PractitionerRole", data=b"{")
    assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert json.loads(response.text)["resourceType"] == "OperationOutcome"
