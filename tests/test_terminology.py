"""Value sets expanded from the CodeSystem and ValueSet files in profiles/ (fhir_server/terminology.py)."""

from __future__ import annotations

import json
import re
import shutil
import typing as t
from pathlib import Path

import pytest

from fhir_server.terminology import (
    CONTACT_POINT_USE,
    ROLE_CODES,
    STATUS_REASONS,
    TerminologyError,
    ValueSet,
    load_value_sets,
)

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
ANZSCO = "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0"
SNOMED_OCCUPATIONS = "http://snomed.info/sct/223366009"
STATUS_REASON_SYSTEM = "https://standards.digital.health.nz/ns/hpi-practitioner-role-status-reason-code"
STATUS_REASON_CS_FILE = "CodeSystem-hpi-practitionerRole-status-reason.json"


@pytest.fixture(scope="module")
def value_sets() -> dict[str, ValueSet]:
    return load_value_sets(PROFILES)


@pytest.fixture
def profiles_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    return folder


def _edit(path: Path, change: t.Callable[[dict[str, t.Any]], None]) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    change(resource)
    path.write_text(json.dumps(resource), encoding="utf-8")


def test_role_code_value_set_has_1098_codes(value_sets: dict[str, ValueSet]) -> None:
    codes = value_sets[ROLE_CODES].codes
    assert len(codes) == 1098
    assert sum(1 for system, _ in codes if system == ANZSCO) == 1022
    assert sum(1 for system, _ in codes if system == SNOMED_OCCUPATIONS) == 76


def test_role_codes_carry_their_system(value_sets: dict[str, ValueSet]) -> None:
    role_codes = value_sets[ROLE_CODES]
    assert role_codes.url == ROLE_CODES
    assert role_codes.contains(ANZSCO, "253314")
    assert role_codes.contains(SNOMED_OCCUPATIONS, "446701002")
    assert not role_codes.contains(SNOMED_OCCUPATIONS, "253314")
    assert not role_codes.contains(None, "253314")
    assert not role_codes.contains(ANZSCO, "999999")


def test_status_reasons(value_sets: dict[str, ValueSet]) -> None:
    assert value_sets[STATUS_REASONS].codes == {
        (STATUS_REASON_SYSTEM, code) for code in ("enteredInError", "duplicate", "died", "other")}


def test_contact_point_use_is_work_or_temp(value_sets: dict[str, ValueSet]) -> None:
    use = value_sets[CONTACT_POINT_USE]
    assert {code for _, code in use.codes} == {"work", "temp"}
    assert use.contains_code("work") and use.contains_code("temp")
    assert not use.contains_code("home")
    assert not use.contains_code(None)


def test_value_set_including_an_unknown_code_system_fails(profiles_copy: Path) -> None:
    extra = {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/unknown",
             "compose": {"include": [{"system": "http://example.org/CodeSystem/not-here"}]}}
    (profiles_copy / "ValueSet-unknown.json").write_text(json.dumps(extra), encoding="utf-8")
    with pytest.raises(TerminologyError, match=re.escape("http://example.org/CodeSystem/not-here")):
        load_value_sets(profiles_copy)


def test_removing_a_bound_code_system_fails(profiles_copy: Path) -> None:
    (profiles_copy / "CodeSystem-SNOMED-health-occupation-subset-20190501.json").unlink()
    with pytest.raises(TerminologyError, match=re.escape(SNOMED_OCCUPATIONS)):
        load_value_sets(profiles_copy)


def test_missing_bound_value_set_fails(profiles_copy: Path) -> None:
    (profiles_copy / "ValueSet-hpi-contact-point-use-code-1.0.json").unlink()
    with pytest.raises(TerminologyError, match=re.escape(CONTACT_POINT_USE)):
        load_value_sets(profiles_copy)


def test_editing_a_code_system_changes_membership(profiles_copy: Path) -> None:
    def change(code_system: dict[str, t.Any]) -> None:
        code_system["concept"] = [c for c in code_system["concept"] if c["code"] != "died"]
        code_system["concept"].append({"code": "retired", "display": "retired"})

    _edit(profiles_copy / STATUS_REASON_CS_FILE, change)
    status_reasons = load_value_sets(profiles_copy)[STATUS_REASONS]
    assert status_reasons.contains(STATUS_REASON_SYSTEM, "retired")
    assert not status_reasons.contains(STATUS_REASON_SYSTEM, "died")
    assert load_value_sets(PROFILES)[STATUS_REASONS].contains(STATUS_REASON_SYSTEM, "died")  # original untouched


def test_adding_a_role_code_to_the_code_system(profiles_copy: Path) -> None:
    _edit(profiles_copy / "CodeSystem-ANZCO-occupations-2013-1.2.json",
          lambda cs: cs["concept"].append({"code": "999999", "display": "Test Occupation"}))
    role_codes = load_value_sets(profiles_copy)[ROLE_CODES]
    assert role_codes.contains(ANZSCO, "999999")
    assert len(role_codes.codes) == 1099
