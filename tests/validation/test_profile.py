"""The HPIPractitionerRole profile: cardinality, prohibited elements, extensions, required bindings
(fhir_server/validation/profile.py, SPEC.md §1)."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import pytest

from fhir_server.definitions import DEFAULT_PROFILES, load_definitions
from fhir_server.outcome import Msg
from fhir_server.terminology import ROLE_CODES, STATUS_REASONS
from fhir_server.validation.profile import check_profile

ROOT = Path(__file__).resolve().parents[2]
CREATE_EXAMPLE = json.loads((ROOT / "tests" / "data" / "create-example.json").read_text(encoding="utf-8"))
DEFINITIONS = load_definitions(ROOT / "profiles")
VALUE_SETS = DEFINITIONS.value_sets
HPI = DEFINITIONS.profiles[DEFAULT_PROFILES["PractitionerRole"]]

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
    return [(i.msg, i.expression) for i in check_profile(resource, HPI)]


def test_the_create_example_has_no_issues() -> None:
    assert check_profile(_example(), HPI) == []


@pytest.mark.parametrize("name", ["R00000012-G", "R00000015-C", "R00000029-P"])
def test_ig_examples_have_no_issues(name: str) -> None:
    resource = json.loads((ROOT / "fhir_server" / "reference_data" / f"{name}.json").read_text(encoding="utf-8"))
    assert check_profile(resource, HPI) == []


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
    issues = check_profile(_example(**{element: value}), HPI)
    path = f"PractitionerRole.{element}"
    assert [(i.msg, i.expression) for i in issues] == [(Msg.PROHIBITED, path)]
    assert dict(issues[0].values) == {"element": path, "profile": "HpiPractitionerRole"}


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
    issues = check_profile(resource, HPI)
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
    assert _check(resource) == [(Msg.TYPE_NOT_ALLOWED, _path(CREATOR, "person") + ".valueString")]


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


def test_messaging_address_sub_extension_of_another_type() -> None:
    resource = _example()
    _ext(resource, MESSAGING_ADDRESS)["extension"][0] = {"url": "provider", "valueCode": "healthlink"}
    assert _check(resource) == [(Msg.TYPE_NOT_ALLOWED, _path(MESSAGING_ADDRESS, "provider") + ".valueCode")]


def test_messaging_address_sub_extension_without_value() -> None:
    resource = _example()
    _ext(resource, MESSAGING_ADDRESS)["extension"][0] = {"url": "provider"}
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
    issues = check_profile(resource, HPI)
    path = _path(STATUS_REASON) + ".valueCodeableConcept.coding"
    assert [(i.msg, i.expression) for i in issues] == [(Msg.CODE_NOT_IN_VALUE_SET, path)]
    assert dict(issues[0].values) == {"code": code, "value_set": STATUS_REASONS}


def test_status_reason_with_text_only() -> None:
    resource = _example()
    resource["extension"].append({"url": STATUS_REASON, "valueCodeableConcept": {"text": "retired"}})
    assert _check(resource) == [(Msg.CODE_NOT_IN_VALUE_SET, _path(STATUS_REASON) + ".valueCodeableConcept.coding")]


def test_status_reason_of_another_type() -> None:
    resource = _example()
    resource["extension"].append({"url": STATUS_REASON, "valueCode": "died"})
    assert _check(resource) == [(Msg.TYPE_NOT_ALLOWED, _path(STATUS_REASON) + ".valueCode")]


def test_status_reason_without_value() -> None:
    resource = _example()
    resource["extension"].append({"url": STATUS_REASON})
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
    issues = check_profile(resource, HPI)
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


# The RI identifier slice (use official, system hpi-practitionerrole-id) and reference targets -----

ROLE_SYSTEM = "https://standards.digital.health.nz/ns/hpi-practitionerrole-id"
RI = f"PractitionerRole.identifier.where(use='official' and system='{ROLE_SYSTEM}')"


def _ri(value: str = "R00000012-G", **more: t.Any) -> dict[str, t.Any]:
    return {"use": "official", "system": ROLE_SYSTEM, "value": value, **more}


def test_identifier_slice_accepts_the_official_role_id_then_others() -> None:
    assert _check(_example(identifier=[_ri(), {"system": "http://example.org/ids", "value": "1"}])) == []


def test_identifier_slice_at_most_once() -> None:
    assert _check(_example(identifier=[_ri(), _ri("R00000015-C")])) == [(Msg.TOO_MANY, RI)]


@pytest.mark.parametrize("element", ["type", "period"])
def test_identifier_slice_prohibits_type_and_period(element: str) -> None:
    value = {"text": "x"} if element == "type" else {"start": "2020-01-01"}
    assert _check(_example(identifier=[_ri(**{element: value})])) == [(Msg.PROHIBITED, f"PractitionerRole.identifier[0].{element}")]


def test_identifier_slice_is_open_at_end_only() -> None:
    other = {"system": "http://example.org/ids", "value": "1"}
    assert _check(_example(identifier=[other, _ri()])) == [(Msg.SLICE_ORDER, "PractitionerRole.identifier[0]")]


def test_role_id_with_another_use_is_not_the_slice() -> None:
    assert _check(_example(identifier=[_ri(use="secondary")])) == []


@pytest.mark.parametrize(("element", "reference"), [
    ("practitioner", {"reference": "Organization/G00001-G"}),
    ("organization", {"reference": "https://example.org/fhir/Practitioner/91ZABY"}),
    ("location", [{"reference": "Organization/G00001-G/_history/2"}]),
    ("practitioner", {"type": "Location", "identifier": {"value": "FZZ961-K"}}),
])
def test_reference_to_a_type_the_profile_does_not_allow(element: str, reference: t.Any) -> None:
    issues = check_profile(_example(**{element: reference}), HPI)
    path = f"PractitionerRole.{element}" + ("[0]" if element == "location" else "")
    assert [(i.msg, i.expression) for i in issues] == [(Msg.REFERENCE_TARGET, path)]
    assert dict(issues[0].values)["allowed"] == {"practitioner": "Practitioner", "organization": "Organization",
                                                 "location": "Location"}[element]


@pytest.mark.parametrize("reference", [{"reference": "#contained"}, {"identifier": {"value": "91ZABY"}}, {"display": "x"}])
def test_references_whose_type_cannot_be_told_are_left_to_the_rules(reference: dict[str, t.Any]) -> None:
    assert _check(_example(practitioner=reference)) == []


def test_creator_person_may_be_a_person_as_the_ig_examples_send() -> None:
    assert _check(_example()) == []  # the create example's creator is Person/17746
    resource = _example()
    _ext(resource, CREATOR)["extension"][0]["valueReference"] = {"reference": "Location/FZZ961-K"}
    assert _check(resource) == [(Msg.REFERENCE_TARGET, _path(CREATOR, "person") + ".valueReference")]
