"""Generate a StructureDefinition's snapshot from its differential, as FHIR tools do (profiling.html#snapshot).

The snapshot is what the server enforces; the differential is what a person edits. After editing a
differential, run ``fhir-server profiles snapshot`` to rewrite the snapshots of ``profiles/``; the
server refuses to start while the two disagree (:mod:`.definitions`).

The base is the parent profile's snapshot when ``profiles/`` holds it, else the official R4 snapshot
of the core type (:mod:`.r4_definitions`), so every element carries R4's definition, cardinality,
``base``, types, constraints, flags and bindings. The differential then constrains it: what it says
replaces the base's (its constraints are added to the base's). Datatype children
(``identifier.system``) appear only where a differential constrains them, as in the core snapshots;
they come from the datatype's snapshot, or from the extension's own definition for an extension
slice with a profile.
"""

from __future__ import annotations

import copy
import typing as t

from .r4_definitions import CORE, UnknownDefinition, structure_definition

Element = dict[str, t.Any]
Resolve = t.Callable[[str], list[Element]]  # a profile's or core type's snapshot, by canonical url

# Mappings name mapping identities declared on the base's StructureDefinition, which a profile does not declare.
_NOT_COPIED = ("mapping",)
# As every core datatype slices its extensions (Element.extension); a resource's are sliced the same way once sliced.
_EXTENSION_SLICING = {"discriminator": [{"type": "value", "path": "url"}],
                      "description": "Extensions are always sliced by (at least) url", "rules": "open"}


def core_url(type_code: str) -> str:
    return CORE + type_code


def generate_snapshot(sd: dict[str, t.Any], by_url: t.Mapping[str, dict[str, t.Any]]) -> list[Element]:
    """The snapshot elements of ``sd``: its base's, with the differential's constraints and slices merged in."""

    def resolve(url: str) -> list[Element]:
        if url in by_url:
            return generate_snapshot(by_url[url], by_url)
        return core_elements(url)

    elements = resolve(sd["baseDefinition"])
    for diff in sd.get("differential", {}).get("element", []):
        _apply(elements, diff, resolve)
    return elements


def core_elements(type_or_url: str) -> list[Element]:
    """The snapshot elements of a core R4 resource or datatype, as published (less their mappings)."""
    try:
        official = structure_definition(type_or_url)
    except UnknownDefinition:
        raise ValueError(f"{type_or_url} is neither in profiles/ nor an R4 core type") from None
    return [{k: copy.deepcopy(v) for k, v in e.items() if k not in _NOT_COPIED} for e in official["snapshot"]["element"]]


def _apply(elements: list[Element], diff: Element, resolve: Resolve) -> None:
    at = _index(elements, diff["id"])
    slice_created = False
    if at is None:
        parent_id, _, last = diff["id"].rpartition(".")
        if ":" in last:  # a new slice: a copy of the sliced element, after its other slices and their children
            sliced_id = f"{parent_id}.{last.split(':')[0]}"
            sliced = elements[_require(elements, sliced_id)]
            if "slicing" not in sliced and sliced["path"].endswith("xtension"):
                sliced["slicing"] = copy.deepcopy(_EXTENSION_SLICING)
            new = {**copy.deepcopy(sliced), "id": diff["id"], "sliceName": last.split(":", 1)[1]}
            new.pop("slicing", None)
            at = _subtree_end(elements, sliced_id)
            elements.insert(at, new)
            slice_created = True
        else:  # a datatype child: expand the parent's datatype first
            parent = elements[_require(elements, parent_id)]
            end = _subtree_end(elements, parent_id, slices=False)
            elements[end:end] = [c for c in _type_children(parent, resolve) if _index(elements, c["id"]) is None]
            at = _require(elements, diff["id"])
    target = elements[at]
    for key, value in diff.items():
        if key == "id":
            continue
        if key == "constraint":  # a profile adds invariants; it cannot take the base's away
            known = {c["key"] for c in target.get("constraint", [])}
            target["constraint"] = target.get("constraint", []) + [copy.deepcopy(c) for c in value if c["key"] not in known]
        else:
            target[key] = copy.deepcopy(value)
    if slice_created:
        _describe_by_profile(target, diff, resolve)


def _describe_by_profile(target: Element, diff: Element, resolve: Resolve) -> None:
    """A new slice of one profile (an extension's) is described as that profile's root describes itself."""
    profiles = [p for tp in target.get("type", []) for p in tp.get("profile", [])]
    if len(profiles) == 1:
        root = resolve(profiles[0])[0]
        target.update({k: root[k] for k in ("short", "definition", "comment") if k in root and k not in diff})


def _index(elements: list[Element], element_id: str) -> int | None:
    return next((i for i, e in enumerate(elements) if e["id"] == element_id), None)


def _require(elements: list[Element], element_id: str) -> int:
    at = _index(elements, element_id)
    if at is None:
        raise ValueError(f"the differential names {element_id}, which its base does not have")
    return at


def _subtree_end(elements: list[Element], element_id: str, slices: bool = True) -> int:
    """The position after ``element_id``'s descendants (and, with ``slices``, its slices and theirs)."""
    end = _require(elements, element_id) + 1
    while end < len(elements) and (elements[end]["id"].startswith(element_id + ".")
                                   or (slices and elements[end]["id"].startswith(element_id + ":"))):
        end += 1
    return end


def _type_children(parent: Element, resolve: Resolve) -> list[Element]:
    """The children of ``parent``'s one type, renamed under it: from the extension's definition where
    the type names one, else from the core datatype."""
    types = parent.get("type", [])
    if len(types) != 1:
        raise ValueError(f"{parent['id']} has {len(types)} types; constrain one type before its children")
    profiles = types[0].get("profile", [])
    source = resolve(profiles[0]) if len(profiles) == 1 else core_elements(types[0]["code"])
    root_id, root_path = source[0]["id"], source[0]["path"]
    return [{**e, "id": parent["id"] + e["id"][len(root_id):], "path": parent["path"] + e["path"][len(root_path):]}
            for e in copy.deepcopy(source[1:])]
