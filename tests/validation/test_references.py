"""Resolving the practitioner, organization and location references (fhir_server/validation/references.py,
SPEC.md §2, §4). The lookup is the module's seam: a plain function stands in for the reference data."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import pytest

from fhir_server.outcome import Msg
from fhir_server.validation.references import Target, check_references, point_at_live_records

ROOT = Path(__file__).resolve().parents[2]
CREATE_EXAMPLE = json.loads((ROOT / "tests" / "data" / "create-example.json").read_text(encoding="utf-8"))

PERSON_SYSTEM = "https://standards.digital.health.nz/ns/hpi-person-id"

# What the lookup knows: key as asked for → the live record. 90ZZGJ and FZZ997-J are dormant ids.
KNOWN = {
    "Practitioner/97ZACB": Target("Practitioner/97ZACB", "mx Ronny J Maunga"),
    "Practitioner/98ZZQJ": Target("Practitioner/98ZZQJ", "Live Practitioner"),
    "Practitioner/90ZZGJ": Target("Practitioner/98ZZQJ", "Live Practitioner"),
    "Organization/GZZ998-G": Target("Organization/GZZ998-G", "Live Org with Dormant"),
    "Location/FZZ961-K": Target("Location/FZZ961-K", "Medical Centre Street Address"),
    "Location/FZZ999-B": Target("Location/FZZ999-B"),
    "Location/FZZ997-J": Target("Location/FZZ999-B"),
}


class RecordingLookup:
    """A lookup over :data:`KNOWN` that remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, keys: list[str]) -> dict[str, Target]:
        self.calls.append(list(keys))
        return {k: KNOWN[k] for k in keys if k in KNOWN}

    @property
    def asked(self) -> list[str]:
        return [k for call in self.calls for k in call]


def _example(**changes: t.Any) -> dict[str, t.Any]:
    resource = copy.deepcopy(CREATE_EXAMPLE)
    resource.update(changes)
    return resource


def _check(resource: dict[str, t.Any]) -> tuple[dict[str, Target], list[tuple[Msg, str | None]], RecordingLookup]:
    lookup = RecordingLookup()
    resolved, issues = check_references(resource, lookup)
    return resolved, [(i.msg, i.expression) for i in issues], lookup


# check_references -----------------------------------------------------------------------------

def test_valid_ids_are_resolved_with_one_lookup() -> None:
    resolved, issues, lookup = _check(_example())
    assert issues == []
    assert resolved == {
        "practitioner": KNOWN["Practitioner/97ZACB"],
        "organization": KNOWN["Organization/GZZ998-G"],
        "location": KNOWN["Location/FZZ961-K"],
    }
    assert lookup.calls == [["Practitioner/97ZACB", "Organization/GZZ998-G", "Location/FZZ961-K"]]


def test_dormant_id_resolves_to_the_live_record() -> None:
    resolved, issues, _ = _check(_example(practitioner={"reference": "Practitioner/90ZZGJ"}))
    assert issues == []
    assert resolved["practitioner"].key == "Practitioner/98ZZQJ"
    assert resolved["practitioner"].id == "98ZZQJ"


def test_only_references_present_are_looked_up() -> None:
    resource = _example()
    del resource["organization"], resource["location"]
    resolved, issues, lookup = _check(resource)
    assert issues == []
    assert list(resolved) == ["practitioner"]
    assert lookup.asked == ["Practitioner/97ZACB"]


def test_no_references_no_lookup() -> None:
    resource = _example()
    del resource["practitioner"], resource["organization"], resource["location"]
    resolved, issues, lookup = _check(resource)
    assert (resolved, issues) == ({}, [])
    assert lookup.calls == []


@pytest.mark.parametrize(("element", "value", "expected"), [
    ("practitioner", {"reference": "Practitioner/99ZZZZ"}, (Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner")),
    ("organization", {"reference": "Organization/GZZ956-B"}, (Msg.ORGANIZATION_INVALID, "PractitionerRole.organization")),
    ("location", [{"reference": "Location/FZZ941-D"}], (Msg.FACILITY_INVALID, "PractitionerRole.location[0]")),
])
def test_unknown_id_is_invalid(element: str, value: t.Any, expected: tuple[Msg, str]) -> None:
    resolved, issues, lookup = _check(_example(**{element: value}))
    assert issues == [expected]
    assert element not in resolved
    assert len(resolved) == 2
    assert len(lookup.calls) == 1


@pytest.mark.parametrize(("element", "value", "expected"), [
    ("practitioner", {"reference": "Practitioner/97ZAC"}, (Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner")),
    ("practitioner", {"reference": "Practitioner/97zacb"}, (Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner")),
    ("organization", {"reference": "Organization/GZZ998-A"}, (Msg.ORGANIZATION_INVALID, "PractitionerRole.organization")),
    ("organization", {"reference": "Organization/GZZ998"}, (Msg.ORGANIZATION_INVALID, "PractitionerRole.organization")),
    ("location", [{"reference": "Location/FZZ961-A"}], (Msg.FACILITY_INVALID, "PractitionerRole.location[0]")),
    ("location", [{"reference": "Location/GZZ998-G"}], (Msg.FACILITY_INVALID, "PractitionerRole.location[0]")),
])
def test_bad_format_or_check_character_is_invalid_without_a_lookup(element: str, value: t.Any,
                                                                   expected: tuple[Msg, str]) -> None:
    resource = _example(**{element: value})
    resolved, issues, lookup = _check(resource)
    assert issues == [expected]
    assert element not in resolved
    bad_key = value[0]["reference"] if element == "location" else value["reference"]
    assert bad_key not in lookup.asked
    assert len(lookup.asked) == 2


@pytest.mark.parametrize(("element", "value", "expected"), [
    ("practitioner", {"reference": "Organization/GZZ998-G"}, (Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner")),
    ("practitioner", {"reference": "Person/97ZACB"}, (Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner")),
    ("organization", {"reference": "Location/FZZ961-K"}, (Msg.ORGANIZATION_INVALID, "PractitionerRole.organization")),
    ("location", [{"reference": "Organization/GZZ998-G"}], (Msg.FACILITY_INVALID, "PractitionerRole.location[0]")),
])
def test_reference_to_the_wrong_resource_type_is_invalid(element: str, value: t.Any, expected: tuple[Msg, str]) -> None:
    resolved, issues, lookup = _check(_example(**{element: value}))
    assert issues == [expected]
    assert element not in resolved
    assert len(lookup.asked) == 2


@pytest.mark.parametrize("value", [{"display": "Dr Who"}, {"reference": "97ZACB"}, {"reference": "Practitioner/"},
                                   {"reference": "Practitioner/97ZACB/_history/1"}])
def test_reference_without_a_usable_id_is_invalid(value: dict[str, str]) -> None:
    _, issues, _ = _check(_example(practitioner=value))
    assert issues == [(Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner")]


def test_absolute_url_reference_is_read_by_its_last_two_segments() -> None:
    url = "https://api.hip.digital.health.nz/fhir/hpi/v1/Practitioner/97ZACB"
    resolved, issues, lookup = _check(_example(practitioner={"reference": url}))
    assert issues == []
    assert resolved["practitioner"].key == "Practitioner/97ZACB"
    assert "Practitioner/97ZACB" in lookup.asked


@pytest.mark.parametrize("system", [PERSON_SYSTEM, "https://standards.digital.health.nz/id/hpi-person"])
def test_identifier_reference_with_a_person_id_system(system: str) -> None:
    resource = _example(practitioner={"identifier": {"system": system, "value": "90ZZGJ"}})
    resolved, issues, _ = _check(resource)
    assert issues == []
    assert resolved["practitioner"].key == "Practitioner/98ZZQJ"


def test_identifier_references_for_organization_and_location() -> None:
    resource = _example(
        organization={"identifier": {"system": "https://standards.digital.health.nz/ns/hpi-organisation-id", "value": "GZZ998-G"}},
        location=[{"identifier": {"system": "https://standards.digital.health.nz/ns/hpi-facility-id", "value": "FZZ997-J"}}],
    )
    resolved, issues, _ = _check(resource)
    assert issues == []
    assert resolved["organization"].key == "Organization/GZZ998-G"
    assert resolved["location"].key == "Location/FZZ999-B"


def test_identifier_reference_with_another_system_is_invalid() -> None:
    resource = _example(practitioner={"identifier": {"system": "https://standards.digital.health.nz/ns/nursing-council-id",
                                                     "value": "97ZACB"}})
    _, issues, lookup = _check(resource)
    assert issues == [(Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner")]
    assert "Practitioner/97ZACB" not in lookup.asked


def test_every_bad_reference_is_reported() -> None:
    resource = _example(practitioner={"reference": "Practitioner/99ZZZZ"},
                        organization={"reference": "Organization/GZZ998-A"},
                        location=[{"reference": "Location/FZZ941-D"}])
    resolved, issues, _ = _check(resource)
    assert resolved == {}
    assert sorted(issues, key=str) == sorted([
        (Msg.PRACTITIONER_INVALID, "PractitionerRole.practitioner"),
        (Msg.ORGANIZATION_INVALID, "PractitionerRole.organization"),
        (Msg.FACILITY_INVALID, "PractitionerRole.location[0]"),
    ], key=str)


# point_at_live_records ------------------------------------------------------------------------

def _resolve(resource: dict[str, t.Any]) -> dict[str, t.Any]:
    resolved, issues = check_references(resource, RecordingLookup())
    assert issues == []
    return point_at_live_records(resource, resolved)


def test_references_get_the_live_key_and_the_name_as_display() -> None:
    out = _resolve(_example())
    assert out["practitioner"] == {"reference": "Practitioner/97ZACB", "display": "mx Ronny J Maunga"}
    assert out["organization"] == {"reference": "Organization/GZZ998-G", "display": "Live Org with Dormant"}
    assert out["location"] == [{"reference": "Location/FZZ961-K", "display": "Medical Centre Street Address"}]


def test_dormant_reference_is_rewritten_to_the_live_record() -> None:
    out = _resolve(_example(practitioner={"reference": "Practitioner/90ZZGJ"}, location=[{"reference": "Location/FZZ997-J"}]))
    assert out["practitioner"]["reference"] == "Practitioner/98ZZQJ"
    assert out["location"] == [{"reference": "Location/FZZ999-B"}]  # no name known: no display added


def test_client_display_is_kept() -> None:
    out = _resolve(_example(practitioner={"reference": "Practitioner/90ZZGJ", "display": "Dr R Maunga"}))
    assert out["practitioner"] == {"reference": "Practitioner/98ZZQJ", "display": "Dr R Maunga"}


def test_identifier_reference_becomes_a_literal_reference() -> None:
    out = _resolve(_example(practitioner={"identifier": {"system": PERSON_SYSTEM, "value": "90ZZGJ"}}))
    assert out["practitioner"] == {"reference": "Practitioner/98ZZQJ", "display": "Live Practitioner"}


def test_absolute_url_becomes_a_relative_reference() -> None:
    out = _resolve(_example(practitioner={"reference": "https://api.hip.digital.health.nz/fhir/hpi/v1/Practitioner/97ZACB"}))
    assert out["practitioner"]["reference"] == "Practitioner/97ZACB"


def test_other_elements_and_unresolved_references_are_untouched() -> None:
    resource = _example()
    del resource["organization"]
    out = point_at_live_records(resource, {"practitioner": KNOWN["Practitioner/90ZZGJ"]})
    assert out["practitioner"] == {"reference": "Practitioner/98ZZQJ", "display": "Live Practitioner"}
    assert out["location"] == resource["location"]
    assert "organization" not in out
    assert out["code"] == resource["code"]


def test_point_at_live_records_does_not_modify_its_input() -> None:
    resource = _example(practitioner={"reference": "Practitioner/90ZZGJ"})
    before = copy.deepcopy(resource)
    _resolve(resource)
    assert resource == before
