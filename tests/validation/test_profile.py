"""The HPIPractitionerRole profile: cardinality, prohibited elements, extensions, required bindings
(fhir_server/validation/profile.py, SPEC.md §1)."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import pytest

from fhir_server.outcome import Msg
from fhir_server.terminology import ROLE_CODES, STATUS_REASONS, load_value_sets
from fhir_server.validation.profile import check_profile

ROOT = Path(__file__).resolve().parents[2]
CREATE_EXAMPLE = json.loads((ROOT / "tests" / "data" / "create-example.json").read_text(encoding="utf-8"))
VALUE_SETS = load_value_sets(ROOT / "profiles")

SD = "http://hl7.org.nz/fhir/StructureDefinition/"
CREATOR = SD + "practitionerRole-creator"
STATUS_REASON = SD + "practitionerRole-status-reason"
MESSAGING_ADDRESS = SD + "messaging-address"
STATUS_REASON_SYSTEM = "https://standards.digital.health.nz/ns/hpi-practitioner-role-status-reason-code"
ANZSCO = "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0"
SNOMED_OCCUPATIONS = "http://snomed.info/sct/223366009"


def _example(**changes: t.Any) -> dict[str, t.Any]:
    resource = copy.deepcopy(CREATE_EXAMPLE)
    resource.update(changes)
    return resource


def _ext(resource: dict[str, t.Any], url: str) -> dict[str, t.Any]:
    return next(e for e in resource["extension"] if e["url"] == url)


def _path(url: str, *subs: str) -> str:
    return f"PractitionerRole.extension('{url}')" + "".join(f".extension('{s}')" for s in subs)


def _status_reason(code: str, system: str = STATUS_REASON_SYSTEM) -> dict[str, t.Any]:
    return {"url": STATUS_REASON, "valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}


def _check(resource: dict[str, t.Any]) -> list[tuple[Msg, str | None]]:
    return [(i.msg, i.expression) for i in check_profile(resource, VALUE_SETS)]


def test_the_create_example_has_no_issues() -> None:
    assert check_profile(_example(), VALUE_SETS) == []


@pytest.mark.parametrize("name", ["R00000012-G", "R00000015-C", "R00000029-P"])
def test_ig_examples_have_no_issues(name: str) -> None:
    resource = json.loads((ROOT / "fhir_server" / "reference_data" / f"{name}.json").read_text(encoding="utf-8"))
    assert check_profile(resource, VALUE_SETS) == []


# Prohibited (0..0) and at-most-once elements --------------------------------------------------

@pytest.mark.parametrize(("element", "value"), [
    ("specialty", [{"text": "Oncology"}]),
    ("healthcareService", [{"reference": "HealthcareService/1"}]),
    ("availableTime", [{"allDay": True}]),
    ("notAvailable", [{"description": "On leave"}]),
    ("availabilityExceptions", "Public holidays"),
    ("endpoint", [{"reference": "Endpoint/1"}]),
])
def test_prohibited_elements(element: str, value: t.Any) -> None:
    issues = check_profile(_example(**{element: value}), VALUE_SETS)
    path = f"PractitionerRole.{element}"
    assert [(i.msg, i.expression) for i in issues] == [(Msg.PROHIBITED, path)]
    assert dict(issues[0].values) == {"element": path}


def test_prohibited_element_sent_only_as_its_primitive_extension() -> None:
    resource = _example(_availabilityExceptions={"extension": [{"url": "http://example.org/x", "valueString": "y"}]})
    assert _check(resource) == [(Msg.PROHIBITED, "PractitionerRole.availabilityExceptions")]


def test_every_prohibited_element_is_reported() -> None:
    resource = _example(specialty=[{"text": "x"}], endpoint=[{"reference": "Endpoint/1"}])
    assert _check(resource) == [(Msg.PROHIBITED, "PractitionerRole.specialty"),
                                (Msg.PROHIBITED, "PractitionerRole.endpoint")]


@pytest.mark.parametrize("element", ["code", "location"])
def test_code_and_location_at_most_once(element: str) -> None:
    resource = _example()
    resource[element] = resource[element] * 2
    issues = check_profile(resource, VALUE_SETS)
    assert [(i.msg, i.expression) for i in issues] == [(Msg.TOO_MANY, f"PractitionerRole.{element}")]
    assert dict(issues[0].values)["max"] == 1


# Extensions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [CREATOR, MESSAGING_ADDRESS])
def test_complex_extension_at_most_once(url: str) -> None:
    resource = _example()
    resource["extension"].append(copy.deepcopy(_ext(resource, url)))
    assert _check(resource) == [(Msg.TOO_MANY, _path(url))]


def test_status_reason_at_most_once() -> None:
    resource = _example()
    resource["extension"] += [_status_reason("died"), _status_reason("other")]
    assert _check(resource) == [(Msg.TOO_MANY, _path(STATUS_REASON))]


def test_creator_without_person() -> None:
    resource = _example()
    _ext(resource, CREATOR)["extension"] = [e for e in _ext(resource, CREATOR)["extension"] if e["url"] != "person"]
    assert _check(resource) == [(Msg.REQUIRED, _path(CREATOR, "person"))]


def test_creator_without_sub_extensions() -> None:
    resource = _example()
    del _ext(resource, CREATOR)["extension"]
    assert _check(resource) == [(Msg.REQUIRED, _path(CREATOR, "person"))]


def test_creator_organization_is_optional() -> None:
    resource = _example()
    _ext(resource, CREATOR)["extension"] = [e for e in _ext(resource, CREATOR)["extension"] if e["url"] == "person"]
    assert _check(resource) == []


def test_creator_person_twice() -> None:
    resource = _example()
    creator = _ext(resource, CREATOR)
    creator["extension"].append(copy.deepcopy(creator["extension"][0]))
    assert _check(resource) == [(Msg.TOO_MANY, _path(CREATOR, "person"))]


def test_creator_person_without_value_reference() -> None:
    resource = _example()
    person = _ext(resource, CREATOR)["extension"][0]
    person["valueString"] = person.pop("valueReference")["reference"]
    assert _check(resource) == [(Msg.REQUIRED, _path(CREATOR, "person") + ".valueReference")]


@pytest.mark.parametrize("missing", ["provider", "value"])
def test_messaging_address_without_a_sub_extension(missing: str) -> None:
    resource = _example()
    address = _ext(resource, MESSAGING_ADDRESS)
    address["extension"] = [e for e in address["extension"] if e["url"] != missing]
    assert _check(resource) == [(Msg.REQUIRED, _path(MESSAGING_ADDRESS, missing))]


def test_messaging_address_with_no_sub_extensions() -> None:
    resource = _example()
    del _ext(resource, MESSAGING_ADDRESS)["extension"]
    assert _check(resource) == [(Msg.REQUIRED, _path(MESSAGING_ADDRESS, "provider")),
                                (Msg.REQUIRED, _path(MESSAGING_ADDRESS, "value"))]


def test_messaging_address_value_twice() -> None:
    resource = _example()
    _ext(resource, MESSAGING_ADDRESS)["extension"].append({"url": "value", "valueString": "OTHER"})
    assert _check(resource) == [(Msg.TOO_MANY, _path(MESSAGING_ADDRESS, "value"))]


def test_messaging_address_sub_extension_without_value_string() -> None:
    resource = _example()
    _ext(resource, MESSAGING_ADDRESS)["extension"][0] = {"url": "provider", "valueCode": "healthlink"}
    assert _check(resource) == [(Msg.REQUIRED, _path(MESSAGING_ADDRESS, "provider") + ".valueString")]


@pytest.mark.parametrize("url", [CREATOR, MESSAGING_ADDRESS])
def test_complex_extension_must_not_carry_a_value(url: str) -> None:
    resource = _example()
    _ext(resource, url)["valueString"] = "x"
    assert _check(resource) == [(Msg.PROHIBITED, _path(url) + ".valueString")]


# Bindings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["enteredInError", "duplicate", "died", "other"])
def test_status_reason_codes_of_the_value_set(code: str) -> None:
    resource = _example()
    resource["extension"].append(_status_reason(code))
    assert _check(resource) == []


@pytest.mark.parametrize(("code", "system"), [
    ("retired", STATUS_REASON_SYSTEM),
    ("Died", STATUS_REASON_SYSTEM),           # the code system is case-sensitive
    ("died", "http://example.org/reasons"),   # right code, wrong system
])
def test_status_reason_code_outside_the_value_set(code: str, system: str) -> None:
    resource = _example()
    resource["extension"].append(_status_reason(code, system))
    issues = check_profile(resource, VALUE_SETS)
    path = _path(STATUS_REASON) + ".valueCodeableConcept.coding"
    assert [(i.msg, i.expression) for i in issues] == [(Msg.CODE_NOT_IN_VALUE_SET, path)]
    assert dict(issues[0].values) == {"code": code, "value_set": STATUS_REASONS}


def test_status_reason_with_text_only() -> None:
    resource = _example()
    resource["extension"].append({"url": STATUS_REASON, "valueCodeableConcept": {"text": "retired"}})
    assert _check(resource) == [(Msg.CODE_NOT_IN_VALUE_SET, _path(STATUS_REASON) + ".valueCodeableConcept.coding")]


def test_status_reason_without_value_codeable_concept() -> None:
    resource = _example()
    resource["extension"].append({"url": STATUS_REASON, "valueCode": "died"})
    assert _check(resource) == [(Msg.REQUIRED, _path(STATUS_REASON) + ".valueCodeableConcept")]


@pytest.mark.parametrize(("system", "code"), [(ANZSCO, "253314"), (ANZSCO, "542114"), (SNOMED_OCCUPATIONS, "446701002")])
def test_role_codes_of_the_value_set(system: str, code: str) -> None:
    resource = _example(code=[{"coding": [{"system": system, "code": code}]}])
    assert _check(resource) == []


@pytest.mark.parametrize(("system", "code"), [
    (ANZSCO, "999999"),
    ("http://snomed.info/sct", "253314"),     # an ANZSCO code under another system
    (SNOMED_OCCUPATIONS, "253314"),
])
def test_role_code_outside_the_value_set(system: str, code: str) -> None:
    resource = _example(code=[{"coding": [{"system": system, "code": code}], "text": "x"}])
    issues = check_profile(resource, VALUE_SETS)
    assert [(i.msg, i.expression) for i in issues] == [(Msg.CODE_NOT_IN_VALUE_SET, "PractitionerRole.code[0].coding")]
    assert dict(issues[0].values) == {"code": code, "value_set": ROLE_CODES}


def test_role_code_with_one_coding_in_the_value_set_is_accepted() -> None:
    resource = _example()
    resource["code"][0]["coding"].insert(0, {"system": "http://example.org/local-roles", "code": "onc"})
    assert _check(resource) == []


@pytest.mark.parametrize("use", ["work", "temp"])
def test_telecom_use_work_or_temp(use: str) -> None:
    resource = _example(telecom=[{"system": "phone", "value": "1324654788", "use": use}, {"system": "phone", "value": "1"}])
    assert _check(resource) == []


@pytest.mark.parametrize("use", ["home", "mobile", "old", "Work"])
def test_telecom_use_outside_the_value_set(use: str) -> None:
    resource = _example(telecom=[{"system": "phone", "value": "1324654788", "use": "work"},
                                 {"system": "phone", "value": "1324654789", "use": use}])
    assert _check(resource) == [(Msg.CODE_NOT_IN_VALUE_SET, "PractitionerRole.telecom[1].use")]


def test_profile_leaves_required_elements_to_the_rules() -> None:
    """What must be present on create is rules.check_required's business, not the profile's."""
    resource = _example()
    for element in ("practitioner", "organization", "location", "code", "extension"):
        del resource[element]
    assert _check(resource) == []
