"""Structural validation of FHIR R4 JSON (fhir_server/validation/structure.py)."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import pytest

from fhir_server.outcome import Msg
from fhir_server.validation.structure import check_structure

ROOT = Path(__file__).resolve().parents[2]
CREATE_EXAMPLE = json.loads((ROOT / "tests" / "data" / "create-example.json").read_text(encoding="utf-8"))
REFERENCE_DATA = ROOT / "fhir_server" / "reference_data"


def _example(**changes: t.Any) -> dict[str, t.Any]:
    resource = copy.deepcopy(CREATE_EXAMPLE)
    resource.update(changes)
    return resource


def _check(resource: t.Any) -> list[tuple[Msg, str | None]]:
    return [(i.msg, i.expression) for i in check_structure(resource, "PractitionerRole")]


def test_the_create_example_has_no_issues() -> None:
    assert check_structure(_example(), "PractitionerRole") == []


@pytest.mark.parametrize("name", ["R00000012-G", "R00000015-C", "R00000029-P"])
def test_ig_practitioner_role_examples_have_no_issues(name: str) -> None:
    resource = json.loads((REFERENCE_DATA / f"{name}.json").read_text(encoding="utf-8"))
    assert check_structure(resource, "PractitionerRole") == []


@pytest.mark.parametrize("name", ["90ZZLP", "91ZABY", "92ZZRE", "98ZZQJ", "GZZ956-B", "GZZ991-D",
                                  "FZZ941-D", "FZZ958-K", "FZZ999-B"])
def test_ig_referenced_resources_have_no_issues(name: str) -> None:
    resource = json.loads((REFERENCE_DATA / f"{name}.json").read_text(encoding="utf-8"))
    assert check_structure(resource, resource["resourceType"]) == []


@pytest.mark.parametrize("doc", [[], "PractitionerRole", 1, None])
def test_a_body_that_is_not_an_object(doc: t.Any) -> None:
    assert _check(doc) == [(Msg.NOT_AN_OBJECT, None)]


@pytest.mark.parametrize("resource_type", ["Practitioner", "practitionerrole", None])
def test_wrong_resource_type(resource_type: t.Any) -> None:
    issues = check_structure(_example(resourceType=resource_type), "PractitionerRole")
    assert [(i.msg, i.expression) for i in issues] == [(Msg.WRONG_RESOURCE_TYPE, "PractitionerRole.resourceType")]
    assert dict(issues[0].values) == {"expected": "PractitionerRole"}


def test_missing_resource_type() -> None:
    resource = _example()
    del resource["resourceType"]
    assert _check(resource) == [(Msg.WRONG_RESOURCE_TYPE, "PractitionerRole.resourceType")]


def test_unsafe_key_is_reported_before_the_model_is_tried() -> None:
    assert _check(_example(**{"$set": {"active": False}})) == [(Msg.UNSAFE_KEY, "PractitionerRole")]


def test_unknown_element() -> None:
    assert _check(_example(colour="blue")) == [(Msg.STRUCTURE, "PractitionerRole.colour")]


def test_unknown_element_inside_a_datatype() -> None:
    resource = _example()
    resource["practitioner"]["colour"] = "blue"
    assert _check(resource) == [(Msg.STRUCTURE, "PractitionerRole.practitioner.colour")]


def test_every_unknown_element_is_reported() -> None:
    assert _check(_example(colour="blue", size=3)) == [
        (Msg.STRUCTURE, "PractitionerRole.colour"),
        (Msg.STRUCTURE, "PractitionerRole.size"),
    ]


@pytest.mark.parametrize(("value", "got"), [("true", "string"), (1, "number")])
def test_boolean_must_be_a_json_boolean(value: t.Any, got: str) -> None:
    issues = check_structure(_example(active=value), "PractitionerRole")
    assert [(i.msg, i.expression) for i in issues] == [(Msg.WRONG_JSON_TYPE, "PractitionerRole.active")]
    assert dict(issues[0].values) == {"expected": "boolean", "got": got}


@pytest.mark.parametrize(("value", "got"), [("5", "string"), (True, "boolean")])
def test_rank_must_be_a_json_number(value: t.Any, got: str) -> None:
    issues = check_structure(_example(telecom=[{"system": "phone", "value": "1324654788", "rank": value}]),
                             "PractitionerRole")
    assert [(i.msg, i.expression) for i in issues] == [(Msg.WRONG_JSON_TYPE, "PractitionerRole.telecom[0].rank")]
    assert dict(issues[0].values) == {"expected": "number", "got": got}


def test_date_must_be_a_json_string() -> None:
    resource = _example()
    resource["period"]["start"] = 20220505
    assert _check(resource) == [(Msg.WRONG_JSON_TYPE, "PractitionerRole.period.start")]


@pytest.mark.parametrize("rank", [0, -1])
def test_rank_below_one(rank: int) -> None:
    resource = _example(telecom=[{"system": "phone", "value": "1324654788"},
                                 {"system": "phone", "value": "1324654789", "rank": rank}])
    assert _check(resource) == [(Msg.RANK_NOT_POSITIVE, "PractitionerRole.telecom[1].rank")]


def test_rank_one_is_valid() -> None:
    assert _check(_example(telecom=[{"system": "phone", "value": "1324654788", "rank": 1}])) == []


def test_null_top_level_value() -> None:
    assert _check(_example(active=None)) == [(Msg.NULL_VALUE, "PractitionerRole.active")]


def test_null_nested_values() -> None:
    resource = _example(telecom=[{"system": "phone", "value": None}])
    resource["period"]["start"] = None
    assert _check(resource) == [
        (Msg.NULL_VALUE, "PractitionerRole.period.start"),
        (Msg.NULL_VALUE, "PractitionerRole.telecom[0].value"),
    ]


@pytest.mark.parametrize(("element", "path"), [
    ("telecom", "PractitionerRole.telecom[0]"),
    ("code", "PractitionerRole.code[0]"),
])
def test_null_inside_an_array_is_named_at_its_item(element: str, path: str) -> None:
    assert _check(_example(**{element: [None]})) == [(Msg.NULL_VALUE, path)]


@pytest.mark.parametrize(("element", "value", "expected", "got"), [
    ("period", "2020", "object", "string"),
    ("period", "[1]", "object", "string"),
    ("active", [True], "boolean", "array"),
    ("practitioner", "Practitioner/97ZACB", "object", "string"),
    ("practitioner", [{"reference": "Practitioner/97ZACB"}], "object", "array"),
    ("practitioner", '{"reference": "Practitioner/97ZACB"}', "object", "string"),
    ("period", True, "object", "boolean"),
    ("location", {"reference": "Location/FZZ961-K"}, "array", "object"),
    ("code", {"text": "Medical Oncologist"}, "array", "object"),
    ("telecom", {"system": "phone", "value": "1324654788"}, "array", "object"),
])
def test_wrong_json_type_for_an_object_or_array(element: str, value: t.Any, expected: str, got: str) -> None:
    issues = check_structure(_example(**{element: value}), "PractitionerRole")
    assert [(i.msg, i.expression) for i in issues] == [(Msg.WRONG_JSON_TYPE, f"PractitionerRole.{element}")]
    assert dict(issues[0].values) == {"expected": expected, "got": got}


def test_wrong_json_type_inside_an_array_item() -> None:
    resource = _example()
    resource["code"][0]["coding"] = "253314"
    assert _check(resource) == [(Msg.WRONG_JSON_TYPE, "PractitionerRole.code[0].coding")]


def test_invalid_date_string() -> None:
    resource = _example()
    resource["period"]["start"] = "2022-13-45"
    assert _check(resource) == [(Msg.STRUCTURE, "PractitionerRole.period.start")]


def test_structure_leaves_hpi_date_rules_to_the_rules_stage() -> None:
    """FHIR allows a partial date; only the HPI rule (rules.check_role_period) demands YYYY-MM-DD."""
    resource = _example()
    resource["period"]["start"] = "2022"
    assert _check(resource) == []


def test_check_structure_does_not_modify_the_resource() -> None:
    resource = _example(active="true")
    before = copy.deepcopy(resource)
    check_structure(resource, "PractitionerRole")
    assert resource == before
