"""FHIR R4's own rules, read from the official R4 4.0.1 StructureDefinitions (fhir_server/validation/base.py):
cardinalities, required bindings, error invariants, unknown modifier extensions and implicitRules."""

from __future__ import annotations

import copy
import itertools
import json
import typing as t
from pathlib import Path

import pytest
from fhirpathpy.engine.nodes import ResourceNode

from fhir_server.outcome import Msg, issue
from fhir_server.validation import base as base_rules
from fhir_server.validation.base import check_base, without_overlap

ROOT = Path(__file__).resolve().parents[2]
CREATE_EXAMPLE = json.loads((ROOT / "tests" / "data" / "create-example.json").read_text(encoding="utf-8"))
XHTML = "http://www.w3.org/1999/xhtml"


def _role(**changes: t.Any) -> dict[str, t.Any]:
    resource = copy.deepcopy(CREATE_EXAMPLE)
    resource.update(changes)
    return resource


def _found(resource: dict[str, t.Any]) -> set[tuple[Msg, str | None, str | None]]:
    return {(i.msg, i.expression, dict(i.values).get("key")) for i in check_base(resource)}


def _reference_examples() -> list[dict[str, t.Any]]:
    out = []
    for file in sorted((ROOT / "fhir_server" / "reference_data").glob("*.json")):
        doc = json.loads(file.read_text(encoding="utf-8"))
        for entry in (doc.get("entry", []) if doc.get("resourceType") == "Bundle" else [{"resource": doc}]):
            out.append(entry["resource"])
    return out


def test_the_ig_create_example_meets_r4():
    assert check_base(CREATE_EXAMPLE) == []


@pytest.mark.parametrize("resource", _reference_examples(), ids=lambda r: f"{r['resourceType']}/{r.get('id')}")
def test_the_reference_data_meets_r4(resource):
    assert check_base(resource) == []


@pytest.mark.parametrize("resource, expression, code", [
    (_role(telecom=[{"system": "carrier-pigeon", "value": "x"}]), "PractitionerRole.telecom[0].system", "carrier-pigeon"),
    (_role(identifier=[{"use": "bogus", "value": "x"}]), "PractitionerRole.identifier[0].use", "bogus"),
    (_role(text={"status": "bogus", "div": f'<div xmlns="{XHTML}">x</div>'}), "PractitionerRole.text.status", "bogus"),
    ({"resourceType": "Practitioner", "gender": "robot"}, "Practitioner.gender", "robot"),
    ({"resourceType": "Practitioner", "name": [{"use": "bogus", "family": "X"}]}, "Practitioner.name[0].use", "bogus"),
    ({"resourceType": "Location", "status": "shut"}, "Location.status", "shut"),
    ({"resourceType": "Location", "hoursOfOperation": [{"daysOfWeek": ["mon", "funday"]}]},
     "Location.hoursOfOperation[0].daysOfWeek[1]", "funday"),
    ({"resourceType": "Organization", "address": [{"use": "castle"}]}, "Organization.address[0].use", "castle"),
])
def test_codes_outside_a_required_binding_are_refused(resource, expression, code):
    found = [i for i in check_base(resource) if i.msg is Msg.BASE_BINDING]
    assert [(i.expression, dict(i.values)["code"]) for i in found] == [(expression, code)]
    assert found[0].status == 422


def test_the_allowed_codes_come_from_the_definitions():
    found = check_base({"resourceType": "Practitioner", "gender": "robot"})
    assert dict(found[0].values)["codes"] == "female, male, other, unknown"


@pytest.mark.parametrize("resource, expression, key", [
    (_role(period={}), "PractitionerRole.period", "ele-1"),
    (_role(identifier=[{}]), "PractitionerRole.identifier[0]", "ele-1"),
    (_role(telecom=[{"system": "phone", "value": "1", "period": {}}]), "PractitionerRole.telecom[0].period", "ele-1"),
    (_role(_active={}), "PractitionerRole._active", "ele-1"),
    (_role(extension=[{"url": "http://example.org/x"}]), "PractitionerRole.extension[0]", "ext-1"),
    (_role(extension=[{"url": "http://example.org/x", "valueString": "a",
                       "extension": [{"url": "y", "valueString": "b"}]}]), "PractitionerRole.extension[0]", "ext-1"),
    (_role(contained=[{"resourceType": "Practitioner", "id": "p1"}]), "PractitionerRole", "dom-3"),
    (_role(contained=[{"resourceType": "Practitioner", "id": "p1", "meta": {"versionId": "1"}}],
           practitioner={"reference": "#p1"}), "PractitionerRole", "dom-4"),
    (_role(text={"status": "generated", "div": f'<div xmlns="{XHTML}"><script>alert(1)</script>hi</div>'}),
     "PractitionerRole.text.div", "txt-1"),
    (_role(text={"status": "generated", "div": f'<div xmlns="{XHTML}"><p onclick="x()">hi</p></div>'}),
     "PractitionerRole.text.div", "txt-1"),
    (_role(text={"status": "generated", "div": f'<div xmlns="{XHTML}">  </div>'}), "PractitionerRole.text.div", "txt-2"),
    ({"resourceType": "Organization", "telecom": [{"value": "021 555 0101"}]}, "Organization.telecom[0]", "cpt-2"),
    ({"resourceType": "Location", "telecom": [{"system": "phone", "value": "1",
                                               "period": {"start": "2022-01-02", "end": "2022-01-01"}}]},
     "Location.telecom[0].period", "per-1"),
])
def test_base_invariants_are_evaluated_with_their_fhirpath(resource, expression, key):
    assert (Msg.BASE_INVARIANT, expression, key) in _found(resource)


def test_an_invariant_names_its_key_and_human_text():
    [found] = check_base(_role(period={}))
    assert found.diagnostics == issue(Msg.BASE_INVARIANT, key="ele-1",
                                      human="All FHIR elements must have a @value or children").diagnostics
    assert found.to_fhir()["expression"] == ["PractitionerRole.period"]


def test_a_referenced_contained_resource_and_a_plain_narrative_pass():
    role = _role(contained=[{"resourceType": "Practitioner", "id": "p1", "name": [{"family": "X"}]}],
                 practitioner={"reference": "#p1"},
                 text={"status": "generated", "div": f'<div xmlns="{XHTML}"><p>A <b>role</b> <img src="#x"/></p></div>'})
    assert check_base(role) == []


def test_cardinalities_inside_datatypes():
    # Reference, Extension and Coding are all 0..1 or more; Extension.url is 1..1 in R4.
    role = _role(extension=[{"valueString": "no url"}])
    assert (Msg.BASE_CARDINALITY, "PractitionerRole.extension[0].url", None) in _found(role)
    practitioner = {"resourceType": "Practitioner", "qualification": [{"issuer": {"display": "x"}}]}
    assert (Msg.BASE_CARDINALITY, "Practitioner.qualification[0].code", None) in _found(practitioner)


def test_contained_resources_are_checked_as_their_own_type():
    role = _role(contained=[{"resourceType": "Practitioner", "id": "p1", "gender": "robot"}], practitioner={"reference": "#p1"})
    assert _found(role) == {(Msg.BASE_BINDING, "PractitionerRole.contained[0].gender", None)}


def test_an_unknown_modifier_extension_is_refused():
    role = _role(modifierExtension=[{"url": "http://example.org/means-the-opposite", "valueBoolean": True}])
    [found] = check_base(role)
    assert found.msg is Msg.MODIFIER_UNKNOWN and found.expression == "PractitionerRole.modifierExtension[0]"
    assert "http://example.org/means-the-opposite" in found.diagnostics


def test_a_modifier_extension_in_a_backbone_element_is_refused_too():
    location = {"resourceType": "Location", "hoursOfOperation": [
        {"allDay": True, "modifierExtension": [{"url": "http://example.org/closed", "valueBoolean": True}]}]}
    assert (Msg.MODIFIER_UNKNOWN, "Location.hoursOfOperation[0].modifierExtension[0]", None) in _found(location)


def test_implicit_rules_are_refused():
    assert _found(_role(implicitRules="http://example.org/rules")) == {
        (Msg.IMPLICIT_RULES, "PractitionerRole.implicitRules", None)}


def test_every_problem_is_reported_at_once():
    role = _role(period={}, identifier=[{"use": "bogus", "value": "x"}], implicitRules="http://example.org/rules")
    assert {m for m, _, _ in _found(role)} == {Msg.BASE_INVARIANT, Msg.BASE_BINDING, Msg.IMPLICIT_RULES}


def test_an_hpi_message_on_the_same_element_wins():
    hpi = issue(Msg.PERIOD_ORDER, "PractitionerRole.period")
    base = [issue(Msg.BASE_INVARIANT, "PractitionerRole.period", key="per-1", human="x"),
            issue(Msg.BASE_BINDING, "PractitionerRole.telecom[0].system", code="x", element="ContactPoint.system", codes="")]
    assert without_overlap(base, [hpi]) == [base[1], hpi]


def _shapes(keys: list[str], values: list[t.Any], most: int) -> t.Iterator[dict[str, t.Any]]:
    for n in range(most + 1):
        for chosen in itertools.combinations(keys, n):
            for picked in itertools.product(values, repeat=n):
                yield dict(zip(chosen, picked, strict=True))


_VALUES: list[t.Any] = [None, [], [None], ["x"], ["x", "#y"], "x", "#p1", {}, {"id": "y"}, 5, True]
_SHAPES = {  # the keys each invariant looks at, beside others it ignores
    "ele-1": (["id", "_id", "url", "_url", "extension", "a"], ["Extension", "Reference", "Period", "PractitionerRole"]),
    "ext-1": (["url", "extension", "_extension", "valueString", "_valueString", "valueBoolean", "valueFoo"], ["Extension"]),
    "ref-1": (["reference", "_reference", "display"], ["Reference"]),
    "dom-2": (["contained", "_contained", "id"], ["PractitionerRole"]),
    "dom-3": (["contained", "_contained", "id"], ["PractitionerRole"]),
    "dom-4": (["contained", "_contained", "id"], ["PractitionerRole"]),
    "dom-5": (["contained", "_contained", "id"], ["PractitionerRole"]),
    "per-1": (["start", "_start", "end", "_end"], ["Period"]),
}


@pytest.mark.parametrize("key", sorted(_SHAPES))
def test_the_invariants_answered_without_the_engine_agree_with_it(key):
    # base.py answers the commonest invariants in Python; on every shape it answers, as fhirpathpy does.
    defs = base_rules.compile_base()
    [(expression, quick)] = [(e, q) for e, q in base_rules._QUICK.items()
                             if any(c.key == key and c.quick is q for c in _constraints(defs))]
    engine = defs.compiled[expression]
    root = {"resourceType": "PractitionerRole", "contained": [{"resourceType": "Practitioner", "id": "p1"}]}
    keys, type_paths = _SHAPES[key]
    answered = 0
    for node in _shapes(keys, _VALUES, 3):
        verdict = quick(node)
        if verdict is None:
            continue
        answered += 1
        for type_path in type_paths:
            try:
                result = engine(ResourceNode.create_node(node, type_path), {"resource": root, "rootResource": root})
            except Exception:
                result = []
            assert verdict == (result in ([True], [])), (node, type_path, result)
    assert answered > 0


def _constraints(defs: t.Any) -> t.Iterator[t.Any]:
    for kind in defs.types.values():
        stack, seen = [kind.root], set()
        while stack:
            el = stack.pop()
            if id(el) in seen:
                continue
            seen.add(id(el))
            yield from el.constraints
            stack.extend(el.children.values())
