"""Generate a StructureDefinition's snapshot from its differential, as FHIR tools do (profiling.html).

The snapshot is what the server enforces; the differential is what a person edits. After editing a
differential, run ``fhir-server profiles snapshot`` to rewrite the snapshots of ``profiles/``; the
server refuses to start while the two disagree (:mod:`.definitions`).

The base is the parent profile's snapshot when ``profiles/`` holds it, else the core R4 type, read
from fhir.resources' models (their R4B PractitionerRole, Extension and datatypes are R4's). Datatype
children (``identifier.system``) appear only where a differential constrains them, as in the core
snapshots. Descriptive texts of core elements are not reproduced.
"""

from __future__ import annotations

import copy
import functools
import types
import typing as t

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.backboneelement import BackboneElement

CORE = "http://hl7.org/fhir/StructureDefinition/"
Element = dict[str, t.Any]


def core_url(type_code: str) -> str:
    return CORE + type_code


def generate_snapshot(sd: dict[str, t.Any], by_url: t.Mapping[str, dict[str, t.Any]]) -> list[Element]:
    """The snapshot elements of ``sd``: its base's, with the differential's constraints and slices merged in."""
    parent = by_url.get(sd["baseDefinition"])
    if parent is not None:
        elements = copy.deepcopy(generate_snapshot(parent, by_url))
    else:
        elements = core_elements(sd["type"])
    for diff in sd.get("differential", {}).get("element", []):
        _apply(elements, diff)
    return elements


def _apply(elements: list[Element], diff: Element) -> None:
    at = _index(elements, diff["id"])
    if at is None:
        parent_id, _, last = diff["id"].rpartition(".")
        if ":" in last:  # a new slice: a copy of the sliced element, after its other slices and their children
            sliced = f"{parent_id}.{last.split(':')[0]}"
            base = elements[_require(elements, sliced)]
            new = {**copy.deepcopy(base), "id": diff["id"]}
            new.pop("slicing", None)
            at = _subtree_end(elements, sliced)
            elements.insert(at, new)
        else:  # a datatype child: expand the parent's datatype first
            parent = elements[_require(elements, parent_id)]
            children = _datatype_children(parent)
            end = _subtree_end(elements, parent_id)
            elements[end:end] = [c for c in children if _index(elements, c["id"]) is None]
            at = _require(elements, diff["id"])
    elements[at].update({k: copy.deepcopy(v) for k, v in diff.items() if k != "id"})


def _index(elements: list[Element], element_id: str) -> int | None:
    return next((i for i, e in enumerate(elements) if e["id"] == element_id), None)


def _require(elements: list[Element], element_id: str) -> int:
    at = _index(elements, element_id)
    if at is None:
        raise ValueError(f"the differential names {element_id}, which its base does not have")
    return at


def _subtree_end(elements: list[Element], element_id: str) -> int:
    """The position after ``element_id``, its slices and all their descendants."""
    end = _require(elements, element_id) + 1
    while end < len(elements) and (elements[end]["id"].startswith(element_id + ".") or elements[end]["id"].startswith(element_id + ":")):
        end += 1
    return end


def _datatype_children(parent: Element) -> list[Element]:
    types = parent.get("type", [])
    if len(types) != 1:
        raise ValueError(f"{parent['id']} has {len(types)} types; constrain one type before its children")
    return [
        {**e, "id": parent["id"] + e["id"][len(types[0]["code"]):], "path": parent["path"] + e["path"][len(types[0]["code"]):]}
        for e in core_elements(types[0]["code"])[1:]
    ]


@functools.cache
def _core(type_code: str) -> tuple[Element, ...]:
    model = get_fhir_model_class(type_code)
    root = {"id": type_code, "path": type_code, "min": 0, "max": "*", "base": {"path": type_code, "min": 0, "max": "*"}}
    return (root, *_fields(model, type_code))


def core_elements(type_code: str) -> list[Element]:
    """The elements of a core R4 resource or datatype (backbone elements expanded)."""
    return copy.deepcopy(list(_core(type_code)))


def _fields(model: t.Any, prefix: str) -> t.Iterator[Element]:
    fields = model.model_fields
    choices: dict[str, Element] = {}
    for name in model.elements_sequence():
        info = fields[name]
        extra = info.json_schema_extra or {}
        choice = extra.get("one_of_many")
        code, backbone, many = _type_of(info.annotation)
        if choice:
            if choice not in choices:
                path = f"{prefix}.{choice}[x]"
                choices[choice] = {"id": path, "path": path, "min": 0, "max": "1",
                                   "base": {"path": path, "min": 0, "max": "1"}, "type": []}
                yield choices[choice]
            if code not in _NOT_R4:
                choices[choice]["type"].append({"code": code})
            continue
        element: Element = {"id": f"{prefix}.{name}", "path": f"{prefix}.{name}",
                            "min": 1 if extra.get("element_required") else 0, "max": "*" if many else "1"}
        element["base"] = {"path": element["path"], "min": element["min"], "max": element["max"]}
        element["type"] = [{"code": "BackboneElement" if backbone else code}]
        if code == "Extension":
            element["slicing"] = dict(_EXTENSION_SLICING)
        if code == "Reference" and extra.get("enum_reference_types"):
            element["type"][0]["targetProfile"] = [core_url(r) for r in extra["enum_reference_types"]]
        yield element
        if backbone:
            yield from _fields(get_fhir_model_class(code), f"{prefix}.{name}")


# As every core snapshot slices extensions (Element.extension).
_EXTENSION_SLICING = {"discriminator": [{"type": "value", "path": "url"}],
                      "description": "Extensions are always sliced by (at least) url", "rules": "open"}
_PRIMITIVES = {bool: "boolean", str: "string"}
_RENAMED = {"UuidVersion": "uuid"}
_NOT_R4 = {"CodeableReference", "RatioRange"}  # R4B's additions to value[x]


def _type_of(annotation: t.Any) -> tuple[str, bool, bool]:
    """FHIR type code of a model field's annotation, whether it is a backbone element, whether a list."""
    many = False
    while True:
        origin, args = t.get_origin(annotation), t.get_args(annotation)
        if origin in (t.Union, types.UnionType):
            annotation = next(a for a in args if a is not type(None))
        elif origin is list:
            many, annotation = True, args[0]
        elif origin is t.Annotated:
            name = type(annotation.__metadata__[-1]).__name__  # the last names the FHIR primitive
            return _RENAMED.get(name, name[0].lower() + name[1:]), False, many
        else:
            break
    if annotation in _PRIMITIVES:
        return _PRIMITIVES[annotation], False, many
    name = getattr(annotation, "__name__", str(annotation)).removesuffix("Type")
    if name == "Resource":
        return "Resource", False, many
    model = get_fhir_model_class(name)
    return name, issubclass(model, BackboneElement), many
