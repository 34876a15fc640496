"""Loading profiles/ (fhir_server/definitions.py): value sets expanded from its CodeSystems and ValueSets,
StructureDefinitions compiled into checks; a changed file changes a verdict; what cannot be enforced
stops start-up."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from fhir_server.definitions import DEFAULT_PROFILES, PLAIN_ROLE_PROFILE, DefinitionError, load_definitions
from fhir_server.outcome import Msg
from fhir_server.terminology import CONTACT_POINT_USE, ROLE_CODES, STATUS_REASONS, ValueSet
from fhir_server.validation.profile import check_profile

from .support import CREATE_EXAMPLE, ROOT

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
ANZSCO = "http://www.abs.gov.au/ausstats/abs@.nsf/mf/1220.0"
SNOMED_OCCUPATIONS = "http://snomed.info/sct/223366009"
STATUS_REASON_SYSTEM = "https://standards.digital.health.nz/ns/hpi-practitioner-role-status-reason-code"
STATUS_REASON_CS_FILE = "CodeSystem-hpi-practitionerRole-status-reason.json"


@pytest.fixture(scope="module")
def value_sets() -> dict[str, ValueSet]:
    return load_definitions(PROFILES).value_sets


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
    extra = {"resourceType": "ValueSet", "id": "unknown", "url": "http://example.org/ValueSet/unknown",
             "compose": {"include": [{"system": "http://example.org/CodeSystem/not-here"}]}}
    (profiles_copy / "ValueSet-unknown.json").write_text(json.dumps(extra), encoding="utf-8")
    with pytest.raises(DefinitionError, match=re.escape("http://example.org/CodeSystem/not-here")):
        _ = load_definitions(profiles_copy).value_sets


def test_removing_a_bound_code_system_fails(profiles_copy: Path) -> None:
    (profiles_copy / "CodeSystem-SNOMED-health-occupation-subset-20190501.json").unlink()
    with pytest.raises(DefinitionError, match=re.escape(SNOMED_OCCUPATIONS)):
        _ = load_definitions(profiles_copy).value_sets


def test_missing_bound_value_set_fails(profiles_copy: Path) -> None:
    (profiles_copy / "ValueSet-hpi-contact-point-use-code-1.0.json").unlink()
    with pytest.raises(DefinitionError, match=re.escape(CONTACT_POINT_USE)):
        _ = load_definitions(profiles_copy).value_sets


def test_editing_a_code_system_changes_membership(profiles_copy: Path) -> None:
    def change(code_system: dict[str, t.Any]) -> None:
        code_system["concept"] = [c for c in code_system["concept"] if c["code"] != "died"]
        code_system["concept"].append({"code": "retired", "display": "retired"})

    _edit(profiles_copy / STATUS_REASON_CS_FILE, change)
    status_reasons = load_definitions(profiles_copy).value_sets[STATUS_REASONS]
    assert status_reasons.contains(STATUS_REASON_SYSTEM, "retired")
    assert not status_reasons.contains(STATUS_REASON_SYSTEM, "died")
    assert load_definitions(PROFILES).value_sets[STATUS_REASONS].contains(STATUS_REASON_SYSTEM, "died")  # original untouched


def test_adding_a_role_code_to_the_code_system(profiles_copy: Path) -> None:
    _edit(profiles_copy / "CodeSystem-ANZCO-occupations-2013-1.2.json",
          lambda cs: cs["concept"].append({"code": "999999", "display": "Test Occupation"}))
    role_codes = load_definitions(profiles_copy).value_sets[ROLE_CODES]
    assert role_codes.contains(ANZSCO, "999999")
    assert len(role_codes.codes) == 1099


# Profiles ---------------------------------------------------------------------------------------

HPI = DEFAULT_PROFILES["PractitionerRole"]
HPI_FILE = "StructureDefinition-HPIPractitionerRole.json"


def _verdict(folder: Path, resource: dict[str, t.Any]) -> list[tuple[Msg, str | None]]:
    profile = load_definitions(folder).profiles[HPI]
    return [(i.msg, i.expression) for i in check_profile(resource, profile)]


def _set_element(sd: dict[str, t.Any], element_id: str, **changes: t.Any) -> None:
    """Edit an element in both the snapshot and the differential, as `fhir-server profiles snapshot` would."""
    for part in ("snapshot", "differential"):
        for element in sd[part]["element"]:
            if element["id"] == element_id:
                element.update(changes)


def test_every_structure_definition_has_a_snapshot_matching_its_differential() -> None:
    definitions = load_definitions(PROFILES)
    assert set(definitions.profiles) == {sd["url"] for sd in definitions.resources["StructureDefinition"].values()}
    assert definitions.known_profiles("PractitionerRole") == [HPI, "http://hl7.org.nz/fhir/StructureDefinition/NzPractitionerRole",
                                                              PLAIN_ROLE_PROFILE]


def test_allowing_a_prohibited_element_in_the_file_accepts_it(profiles_copy: Path) -> None:
    with_specialty = {**CREATE_EXAMPLE, "specialty": [{"text": "Oncology"}]}
    assert _verdict(profiles_copy, with_specialty) == [(Msg.PROHIBITED, "PractitionerRole.specialty")]
    _edit(profiles_copy / HPI_FILE, lambda sd: _set_element(sd, "PractitionerRole.specialty", max="*"))
    assert _verdict(profiles_copy, with_specialty) == []


def test_a_new_cardinality_in_the_file_rejects_what_was_valid(profiles_copy: Path) -> None:
    assert _verdict(profiles_copy, CREATE_EXAMPLE) == []
    _edit(profiles_copy / HPI_FILE, lambda sd: _set_element(sd, "PractitionerRole.period", max="0"))
    assert _verdict(profiles_copy, CREATE_EXAMPLE) == [(Msg.PROHIBITED, "PractitionerRole.period")]


def test_a_new_fixed_value_in_the_file_is_enforced(profiles_copy: Path) -> None:
    _edit(profiles_copy / HPI_FILE, lambda sd: _set_element(sd, "PractitionerRole.active", fixedBoolean=True))
    assert _verdict(profiles_copy, CREATE_EXAMPLE) == []
    assert _verdict(profiles_copy, {**CREATE_EXAMPLE, "active": False}) == [(Msg.FIXED_VALUE, "PractitionerRole.active")]


def test_a_new_reference_target_in_the_file_is_enforced(profiles_copy: Path) -> None:
    target = [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Location"]}]
    _edit(profiles_copy / HPI_FILE, lambda sd: _set_element(sd, "PractitionerRole.organization", type=target))
    assert _verdict(profiles_copy, CREATE_EXAMPLE) == [(Msg.REFERENCE_TARGET, "PractitionerRole.organization")]


def test_regenerated_snapshot_follows_an_edited_differential(profiles_copy: Path) -> None:
    """Edit the differential alone: start-up refuses; `fhir-server profiles snapshot` brings the snapshot in line."""
    def allow_specialty(sd: dict[str, t.Any]) -> None:
        next(e for e in sd["differential"]["element"] if e["id"] == "PractitionerRole.specialty")["max"] = "*"

    _edit(profiles_copy / HPI_FILE, allow_specialty)
    with pytest.raises(DefinitionError, match=re.escape("PractitionerRole.specialty: the snapshot's max differs from the differential")):
        load_definitions(profiles_copy)
    result = subprocess.run([sys.executable, "-m", "fhir_server", "profiles", "snapshot"], capture_output=True, text=True,
                            env={**os.environ, "PROFILES_DIR": str(profiles_copy)}, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "The profiles load." in result.stdout
    assert _verdict(profiles_copy, {**CREATE_EXAMPLE, "specialty": [{"text": "Oncology"}]}) == []


def test_shipped_snapshots_are_what_the_generator_makes(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    subprocess.run([sys.executable, "-m", "fhir_server", "profiles", "snapshot"], check=True, capture_output=True,
                   env={**os.environ, "PROFILES_DIR": str(folder)}, cwd=ROOT, timeout=120)
    for path in sorted(PROFILES.glob("StructureDefinition-*.json")):
        assert json.loads((folder / path.name).read_text()) == json.loads(path.read_text()), path.name


@pytest.mark.parametrize(("change", "message"), [
    (lambda sd: _set_element(sd, "PractitionerRole.code", constraint=[{"key": "hpi-1", "severity": "error", "human": "x",
                                                                        "expression": "coding.exists()"}]),
     "PractitionerRole.code: invariants (constraint) are not enforced by this server"),
    (lambda sd: _set_element(sd, "PractitionerRole.telecom.use", binding={"strength": "required", "valueSet": "http://example.org/vs"}),
     "PractitionerRole.telecom.use: binds ValueSet http://example.org/vs, which profiles/ does not hold"),
    (lambda sd: _set_element(sd, "PractitionerRole.identifier", slicing={"discriminator": [{"type": "type", "path": "$this"}],
                                                                          "rules": "open"}),
     "slicing by type is not supported"),
    (lambda sd: _set_element(sd, "PractitionerRole.period", binding={"strength": "required", "valueSet": ROLE_CODES}),
     "a required binding on type Period is not supported"),
    (lambda sd: _set_element(sd, "PractitionerRole.practitioner",
                             type=[{"code": "Reference", "targetProfile": ["http://example.org/StructureDefinition/Other"]}]),
     "names target profile http://example.org/StructureDefinition/Other, which profiles/ does not hold"),
    (lambda sd: sd.pop("snapshot"), "no snapshot; run `fhir-server profiles snapshot`"),
])
def test_a_profile_the_server_cannot_enforce_stops_loading(profiles_copy: Path, change: t.Any, message: str) -> None:
    _edit(profiles_copy / HPI_FILE, change)
    with pytest.raises(DefinitionError, match=re.escape(message)):
        load_definitions(profiles_copy)


def test_missing_default_profile_stops_loading(profiles_copy: Path) -> None:
    (profiles_copy / HPI_FILE).unlink()
    with pytest.raises(DefinitionError, match=re.escape(HPI)):
        load_definitions(profiles_copy)


def test_serve_refuses_to_start_with_a_profile_it_cannot_enforce(profiles_copy: Path, tmp_path: Path) -> None:
    _edit(profiles_copy / HPI_FILE, lambda sd: _set_element(sd, "PractitionerRole.identifier",
                                                            slicing={"discriminator": [{"type": "exists", "path": "use"}]}))
    result = subprocess.run([sys.executable, "-m", "fhir_server", "serve"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "PROFILES_DIR": str(profiles_copy), "DATA_DIR": str(tmp_path / "var")})
    assert result.returncode == 1
    assert "Error: cannot enforce the profiles:" in result.stderr
    assert "PractitionerRole.identifier: slicing by exists is not supported (only value and pattern)" in result.stderr
    assert "Traceback" not in result.stderr
