"""Structural validation: is the JSON a FHIR R4 resource of the expected type?

fhir.resources' R4B models parse the resource (R4B's PractitionerRole, Practitioner, Organization
and Location are element-for-element R4's). The models are lenient where FHIR JSON is not: they turn
``"true"`` and ``1`` into booleans, ``"5"`` into integers and accept ``null`` and control characters:
:func:`_check_primitives` runs before them, and :func:`_check_json_types` walks the raw JSON beside the parsed model after.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import importlib
import re
import typing as t

from pydantic import BaseModel, ValidationError

from ..exact_json import number_text
from ..outcome import Issue, Msg, issue
from .fhirpath import from_loc
from .json_body import Limits, check_keys

_MODULES = {
    "PractitionerRole": "practitionerrole",
    "Practitioner": "practitioner",
    "Organization": "organization",
    "Location": "location",
}


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@functools.cache
def _model(resource_type: str) -> type[BaseModel]:
    module = importlib.import_module(f"fhir.resources.R4B.{_MODULES[resource_type]}")
    return t.cast(type[BaseModel], getattr(module, resource_type))


def check_structure(doc: t.Any, resource_type: str, limits: Limits = Limits()) -> list[Issue]:
    """Every structural problem of ``doc`` as a ``resource_type``, each with its FHIRPath; arrays and
    strings past ``limits`` are structural here (400), as nesting is: a server limit, not a FHIR rule."""
    if not isinstance(doc, dict):
        return [issue(Msg.NOT_AN_OBJECT)]
    issues = check_keys(doc, resource_type, limits)
    if issues:
        return issues
    if doc.get("resourceType") != resource_type:
        return [issue(Msg.WRONG_RESOURCE_TYPE, f"{resource_type}.resourceType", expected=resource_type)]
    issues = _check_primitives(doc, resource_type)
    if issues:
        return issues
    try:
        model = _model(resource_type).model_validate(doc)
    except ValidationError as e:
        return [_structure_issue(doc, resource_type, err) for err in e.errors(include_url=False)]
    return _check_json_types(doc, model, resource_type)


def _check_primitives(node: t.Any, path: str) -> list[Issue]:
    """FHIR JSON has no nulls (R4 json.html), and its strings no control characters but tab, CR and
    LF (R4 datatypes.html#string); the models would accept both silently."""
    if node is None:
        return [issue(Msg.NULL_VALUE, path)]
    if isinstance(node, str):
        return [issue(Msg.CONTROL_CHARACTER, path)] if _CONTROL.search(node) else []
    if isinstance(node, dict):
        return [i for k, v in node.items() for i in _check_primitives(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [i for n, v in enumerate(node) for i in _check_primitives(v, f"{path}[{n}]")]
    return []


def _raw_at(doc: t.Any, loc: t.Iterable[str | int]) -> t.Any:
    """The JSON value the client sent at a pydantic location (pydantic reports some inputs decoded)."""
    for part in loc:
        if isinstance(doc, dict) and isinstance(part, str) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
            doc = doc[part]
    return doc


# Pydantic's words for "this should have been an object/array", which read oddly for JSON input.
_WANTS_OBJECT = {"json_invalid", "model_type", "model_attributes_type", "dict_type", "is_instance_of"}
_WANTS_PRIMITIVE = {"bool_type": "boolean", "string_type": "string", "int_type": "number", "float_type": "number",
                    "decimal_type": "number"}


def _structure_issue(doc: dict[str, t.Any], root: str, err: t.Any) -> Issue:
    loc, kind, value = err["loc"], err["type"], _raw_at(doc, err["loc"])
    if kind == "extra_forbidden":
        return issue(Msg.STRUCTURE, from_loc(root, loc), reason=f"Unknown element {loc[-1]!r}")
    if kind in _WANTS_OBJECT or "expected from the instance of" in err["msg"]:
        return issue(Msg.WRONG_JSON_TYPE, from_loc(root, loc), expected="object", got=_json_type(value))
    if kind == "greater_than_equal" and loc[-1] == "rank":
        return issue(Msg.RANK_NOT_POSITIVE, from_loc(root, loc))
    if kind in _WANTS_PRIMITIVE:
        return issue(Msg.WRONG_JSON_TYPE, from_loc(root, loc), expected=_WANTS_PRIMITIVE[kind], got=_json_type(value))
    if kind == "list_type":
        return issue(Msg.WRONG_JSON_TYPE, from_loc(root, loc), expected="array", got=_json_type(value))
    reason = err["msg"].removeprefix("Value error, ")
    if isinstance(value, (str, int, float, decimal.Decimal)) and len(str(value)) <= 100:
        reason = f"{reason} (got {number_text(value) if isinstance(value, decimal.Decimal) else repr(value)})"
    return issue(Msg.STRUCTURE, from_loc(root, loc), reason=reason)


def _json_type(value: t.Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, decimal.Decimal)):
        return "number"
    if isinstance(value, (str, dt.date, dt.datetime, dt.time)):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object"


@functools.cache
def _field_names(model_type: type[BaseModel]) -> dict[str, str]:
    """JSON property name → model field name (``_active`` → ``active__ext``, ``class`` → ``class_fhir``)."""
    names: dict[str, str] = {}
    for name, info in model_type.model_fields.items():
        names[info.alias or name] = name
        if name.endswith("__ext"):
            names["_" + name[:-5]] = name
    return names


def _check_json_types(raw: dict[str, t.Any], model: BaseModel, path: str) -> list[Issue]:
    issues: list[Issue] = []

    def compare(value: t.Any, parsed: t.Any, at: str) -> None:
        if isinstance(value, dict):
            if isinstance(parsed, BaseModel):
                walk(value, parsed, at)
        elif isinstance(value, list):
            if not isinstance(parsed, (list, tuple)):
                issues.append(issue(Msg.WRONG_JSON_TYPE, at, expected="object", got="array"))
                return
            for i, (v, p) in enumerate(zip(value, parsed, strict=False)):
                compare(v, p, f"{at}[{i}]")
        elif parsed is not None and _json_type(value) != _json_type(parsed):
            issues.append(issue(Msg.WRONG_JSON_TYPE, at, expected=_json_type(parsed), got=_json_type(value)))

    def walk(obj: dict[str, t.Any], parsed: BaseModel, at: str) -> None:
        names = _field_names(type(parsed))
        for key, value in obj.items():
            if key == "resourceType":
                continue
            field = names.get(key)
            compare(value, getattr(parsed, field) if field else None, f"{at}.{key}")

    walk(raw, model, path)
    return issues
