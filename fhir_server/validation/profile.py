"""Profile checks read from a StructureDefinition's snapshot (profiling.html): cardinality (0..0
included), fixed and pattern values, required bindings, allowed types and reference targets, slices
by value, and the extensions' own definitions. Checks the shape of what is there; what must be there
for the HPI is :mod:`.rules`'s business.

:func:`compile_profile` turns a snapshot into :class:`Rule` trees once, at start-up, and raises
:class:`ProfileError` for anything it cannot enforce, so that a profile is never half applied.
:func:`check_profile` is pure: a resource and a compiled profile in, Issues out.
"""

from __future__ import annotations

import functools
import json
import typing as t
from dataclasses import dataclass, field

from ..outcome import Issue, Msg, issue
from ..terminology import ValueSet

_FIXED = ("fixed", "pattern")
_CODED = {"code", "Coding", "CodeableConcept"}
_CORE_VALUE_SETS = "http://hl7.org/fhir/ValueSet/"
# ElementDefinition keys that say what an element means rather than what it may hold.
_DESCRIPTIVE = {"id", "path", "short", "definition", "comment", "requirements", "alias", "mustSupport", "isSummary",
                "isModifier", "isModifierReason", "mapping", "example", "base", "constraint", "condition", "sliceName",
                "label", "code", "meaningWhenMissing", "orderMeaning", "representation", "maxLength", "sliceIsConstraining"}


class ProfileError(Exception):
    """A StructureDefinition the server cannot enforce as written; stops start-up."""


@dataclass
class Slice:
    name: str
    rule: Rule
    values: dict[str, t.Any]  # discriminator path → the value an item must have there


@dataclass
class Rule:
    """One element of a snapshot, with its children and slices."""

    name: str  # the JSON property, "value[x]" for a choice
    array: bool = False  # JSON holds it as an array (its base allows more than one)
    min: int = 0
    max: int | None = None  # None: unbounded
    types: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()  # resource types a Reference may point at; () = any
    extension: Profile | None = None  # the definition an Extension must meet
    fixed: tuple[str, t.Any] | None = None  # ("fixed" | "pattern", value)
    binding: ValueSet | None = None  # required bindings only
    children: dict[str, Rule] = field(default_factory=dict)
    discriminators: tuple[str, ...] = ()
    rules: str = "open"
    slices: list[Slice] = field(default_factory=list)

    @functools.cached_property  # read at every visit; the name never changes once compiled
    def choice(self) -> str | None:
        return self.name[:-3] if self.name.endswith("[x]") else None


@dataclass
class Profile:
    url: str
    name: str
    type: str
    root: Rule



# --- compile -----------------------------------------------------------------------------------------

def compile_profile(sd: dict[str, t.Any], value_sets: t.Mapping[str, ValueSet], profile_of: t.Callable[[str], Profile],
                    type_of: t.Callable[[str], str]) -> Profile:
    """The rules of ``sd``'s snapshot. ``profile_of`` compiles an extension's definition, ``type_of``
    names the resource type of a reference's target profile; both raise ProfileError if unknown."""
    url = sd["url"]
    elements = sd.get("snapshot", {}).get("element", [])
    if not elements:
        raise ProfileError(f"{url}: no snapshot; run `fhir-server profiles snapshot`")
    _check_differential(sd, elements)
    rules: dict[str, Rule] = {}
    root: Rule | None = None
    for element in elements:
        eid = element["id"]
        try:
            rule = _compile_element(element, value_sets, profile_of, type_of)
        except ProfileError as e:
            raise ProfileError(f"{url}: {eid}: {e}") from None
        parent_id, _, last = eid.rpartition(".")
        rules[eid] = rule
        if not parent_id:
            root = rule
        elif ":" in last:
            sliced = rules.get(f"{parent_id}.{last.split(':')[0]}")
            if sliced is None or not sliced.discriminators:
                raise ProfileError(f"{url}: {eid} is a slice of an element that declares no slicing")
            sliced.slices.append(Slice(element["sliceName"], rule, {}))
        elif parent_id in rules:
            rules[parent_id].children[last] = rule
        else:
            raise ProfileError(f"{url}: {eid} comes before its parent {parent_id}")
    assert root is not None
    for eid, rule in rules.items():
        for s in rule.slices:
            s.values = _slice_values(url, eid, rule, s)
        _require_simple_extension_value(rule)
    return Profile(url, sd.get("name", sd["id"]), sd["type"], root)


def _compile_element(element: dict[str, t.Any], value_sets: t.Mapping[str, ValueSet],
                     profile_of: t.Callable[[str], Profile], type_of: t.Callable[[str], str]) -> Rule:
    types = element.get("type", [])
    codes = tuple(tp["code"] for tp in types)
    rule = Rule(element["path"].rsplit(".", 1)[-1], element.get("base", {}).get("max", "1") != "1",
                int(element.get("min", 0)), None if element.get("max", "*") == "*" else int(element["max"]), codes)
    rule.targets = tuple(type_of(p) for tp in types for p in tp.get("targetProfile", []))
    ext_profiles = [p for tp in types for p in tp.get("profile", [])]
    if len(ext_profiles) > 1:
        raise ProfileError("more than one type profile is not supported")
    if ext_profiles:
        rule.extension = profile_of(ext_profiles[0])
    fixed = [(k, v) for k, v in element.items() if k.startswith(_FIXED)]
    if len(fixed) > 1:
        raise ProfileError("more than one fixed or pattern value")
    if fixed:
        rule.fixed = ("fixed" if fixed[0][0].startswith("fixed") else "pattern", fixed[0][1])
    binding = element.get("binding", {})
    if binding.get("strength") == "required":
        if not set(codes) <= _CODED:
            raise ProfileError(f"a required binding on type {', '.join(codes)} is not supported (only {', '.join(sorted(_CODED))})")
        value_set = value_sets.get(binding.get("valueSet", "").split("|")[0])
        # R4's own bindings, copied from the base, are the base validation's to check.
        if value_set is None and not binding.get("valueSet", "").startswith(_CORE_VALUE_SETS):
            raise ProfileError(f"binds ValueSet {binding.get('valueSet')}, which profiles/ does not hold")
        rule.binding = value_set
    slicing = element.get("slicing")
    if slicing:
        kinds = {d["type"] for d in slicing.get("discriminator", [])}
        if not kinds or not kinds <= {"value", "pattern"}:
            raise ProfileError(f"slicing by {', '.join(sorted(kinds)) or 'nothing'} is not supported (only value and pattern)")
        if slicing.get("ordered"):
            raise ProfileError("ordered slicing is not supported")
        rule.discriminators = tuple(d["path"] for d in slicing["discriminator"])
        rule.rules = slicing.get("rules", "open")
    return rule


def _check_differential(sd: dict[str, t.Any], snapshot: list[dict[str, t.Any]]) -> None:
    """What the differential says must be what the snapshot enforces: an edit to one alone is a mistake."""
    by_id = {e["id"]: e for e in snapshot}
    for diff in sd.get("differential", {}).get("element", []):
        if diff.get("constraint"):
            raise ProfileError(f"{sd['url']}: {diff['id']}: invariants (constraint) are not enforced by this server")
        snap = by_id.get(diff["id"])
        if snap is None:
            raise ProfileError(f"{sd['url']}: the snapshot lacks {diff['id']}; run `fhir-server profiles snapshot`")
        differ = sorted(k for k, v in diff.items() if k not in _DESCRIPTIVE and snap.get(k) != v)
        if differ:
            raise ProfileError(f"{sd['url']}: {diff['id']}: the snapshot's {', '.join(differ)} differs from the differential; "
                               "run `fhir-server profiles snapshot`")


def _slice_values(url: str, eid: str, sliced: Rule, s: Slice) -> dict[str, t.Any]:
    values = {}
    for path in sliced.discriminators:
        child = s.rule.children.get(path)
        if child is not None and child.fixed is not None:
            values[path] = child.fixed[1]
        elif path == "url" and s.rule.extension is not None:
            values[path] = s.rule.extension.url  # an extension slice is told apart by its definition's url
        else:
            raise ProfileError(f"{url}: {eid}:{s.name} has no fixed value at {path}, which the slicing discriminates on")
    return values


def _require_simple_extension_value(rule: Rule) -> None:
    """Core invariant ext-1: an extension has a value or sub-extensions. One that may have no
    sub-extensions must therefore have its value."""
    sub, value = rule.children.get("extension"), rule.children.get("value[x]")
    if sub is not None and sub.max == 0 and value is not None and value.max != 0:
        value.min = max(value.min, 1)


# --- check -------------------------------------------------------------------------------------------

def check_profile(resource: dict[str, t.Any], profile: Profile) -> list[Issue]:
    """Every way ``resource`` falls short of ``profile``, each with its FHIRPath."""
    issues = _check_children(resource, profile.root, profile.type, profile)
    return list(dict.fromkeys(issues))  # a slice and its extension's definition may see the same problem


def _check_children(node: dict[str, t.Any], rule: Rule, path: str, profile: Profile) -> list[Issue]:
    issues = []
    for child in rule.children.values():
        items = _items(node, child)
        at = f"{path}.{child.name}"
        named = f"{path}.{items[0][0]}" if child.choice and items else _choice_path(at, child)
        found = _check_count(len(items), child, named, profile)
        issues += found
        if child.max == 0 and found:
            continue  # what is not allowed at all is not checked further
        if child.discriminators:
            issues += _check_slices(items, child, at, profile)
        else:
            for i, (key, value) in enumerate(items):
                issues += _check_value(value, key, child, f"{path}.{key}[{i}]" if child.array else f"{path}.{key}", profile)
    return issues


def _items(node: dict[str, t.Any], rule: Rule) -> list[tuple[str, t.Any]]:
    """The (property, value) pairs of ``node`` that ``rule`` describes; a primitive's ``_x`` counts."""
    if rule.choice:
        keys = [k for k in node if _is_choice_of(k, rule)]
    elif rule.name in node or "_" + rule.name in node:
        keys = [rule.name]
    else:
        return []  # most of a profile's elements are absent from a resource
    out: list[tuple[str, t.Any]] = []
    for key in keys:
        value, extra = node.get(key), node.get("_" + key)
        values = value if isinstance(value, list) else [] if value is None else [value]
        extras = extra if isinstance(extra, list) else [] if extra is None else [extra]
        out += [(key, v) for v in values] + [(key, None)] * max(0, len(extras) - len(values))
    return out


def _is_choice_of(key: str, rule: Rule) -> bool:
    stem = t.cast(str, rule.choice)
    return key.startswith(stem) and len(key) > len(stem) and key[len(stem)].isupper()


def _choice_path(at: str, rule: Rule) -> str:
    """``value[x]`` is named by its one allowed type where there is one, as a client would write it."""
    if rule.choice and len(rule.types) == 1:
        return f"{at[:-len(rule.name)]}{rule.choice}{_type_suffix(rule.types[0])}"
    return at


def _type_suffix(code: str) -> str:
    return code[0].upper() + code[1:]


def _check_count(count: int, rule: Rule, at: str, profile: Profile) -> list[Issue]:
    if count < rule.min and sum(s.rule.min for s in rule.slices) < rule.min:  # else its slices' checks say it better
        return [issue(Msg.REQUIRED, at, element=at) if count == 0 else issue(Msg.TOO_FEW, at, element=at, min=rule.min)]
    if rule.max == 0 and count:
        return [issue(Msg.PROHIBITED, at, element=at, profile=profile.name)]
    if rule.max is not None and count > rule.max:
        return [issue(Msg.TOO_MANY, at, element=at, max=rule.max)]
    return []


def _check_slices(items: list[tuple[str, t.Any]], rule: Rule, at: str, profile: Profile) -> list[Issue]:
    issues: list[Issue] = []
    matched: dict[int, Slice] = {}
    for i, (_, value) in enumerate(items):
        s = next((s for s in rule.slices if isinstance(value, dict) and _matches(value, s.values)), None)
        if s is not None:
            matched[i] = s
    for s in rule.slices:
        mine = [i for i in matched if matched[i] is s]
        where = _slice_path(at, s)
        issues += _check_count(len(mine), s.rule, where, profile)
        for i in mine:
            issues += _check_value(items[i][1], items[i][0], s.rule, where if rule.name == "extension" else f"{at}[{i}]", profile)
    for i, (key, value) in enumerate(items):
        if i in matched:
            continue
        if rule.rules == "closed":
            issues.append(issue(Msg.SLICE_UNMATCHED, f"{at}[{i}]", element=at))
        elif rule.rules == "openAtEnd" and any(j > i for j in matched):
            issues.append(issue(Msg.SLICE_ORDER, f"{at}[{i}]", element=at))
        issues += _check_value(value, key, rule, f"{at}[{i}]", profile)
    return issues


def _matches(value: dict[str, t.Any], wanted: dict[str, t.Any]) -> bool:
    return all(_conforms(value.get(path), v, "pattern") for path, v in wanted.items())


def _slice_path(at: str, s: Slice) -> str:
    if set(s.values) == {"url"} and at.endswith(".extension"):
        return f"{at}('{s.values['url']}')"
    condition = " and ".join(f"{path}={json.dumps(v)}" for path, v in s.values.items()).replace('"', "'")
    return f"{at}.where({condition})"


def _check_value(value: t.Any, key: str, rule: Rule, at: str, profile: Profile) -> list[Issue]:
    issues: list[Issue] = []
    if rule.choice and rule.types and key[len(rule.choice):] not in {_type_suffix(c) for c in rule.types}:
        allowed = " or ".join(rule.choice + _type_suffix(c) for c in rule.types)
        return [issue(Msg.TYPE_NOT_ALLOWED, at, element=at, allowed=allowed)]
    if value is None:
        return []
    if rule.fixed is not None and not _conforms(value, rule.fixed[1], rule.fixed[0]):
        issues.append(issue(Msg.FIXED_VALUE, at, element=at, value=json.dumps(rule.fixed[1])))
    if rule.binding is not None:
        issues += _check_binding(value, rule.binding, at)
    if rule.targets and isinstance(value, dict):
        target = _target_type(value)
        if target is not None and target not in rule.targets:
            issues.append(issue(Msg.REFERENCE_TARGET, at, element=at, allowed=" or ".join(dict.fromkeys(rule.targets))))
    if isinstance(value, dict):
        issues += _check_children(value, rule, at, profile)
        if rule.extension is not None and value.get("url") == rule.extension.url:
            issues += _check_children(value, rule.extension.root, at, profile)
    return issues


def _conforms(value: t.Any, wanted: t.Any, kind: str) -> bool:
    """fixed: exactly equal. pattern: every part of ``wanted`` is in ``value`` (arrays: each wanted item in some item)."""
    if kind == "fixed" or not isinstance(wanted, (dict, list)):
        return bool(value == wanted)
    if isinstance(wanted, dict):
        return isinstance(value, dict) and all(_conforms(value.get(k), v, kind) for k, v in wanted.items())
    return isinstance(value, list) and all(any(_conforms(v, w, kind) for v in value) for w in wanted)


def _check_binding(value: t.Any, value_set: ValueSet, at: str) -> list[Issue]:
    """A required binding: the code, the Coding, or one coding of the CodeableConcept is in the value set."""
    if isinstance(value, str):
        return [] if value_set.contains_code(value) else [issue(Msg.CODE_NOT_IN_VALUE_SET, at, code=value, value_set=value_set.url)]
    if not isinstance(value, dict):
        return []
    if "coding" not in value and ("code" in value or "system" in value):  # a Coding
        ok = value_set.contains(value.get("system"), value.get("code"))
        return [] if ok else [issue(Msg.CODE_NOT_IN_VALUE_SET, at, code=value.get("code"), value_set=value_set.url)]
    codings = value.get("coding", [])
    if any(value_set.contains(c.get("system"), c.get("code")) for c in codings):
        return []
    shown = codings[0].get("code") if codings else value.get("text")
    return [issue(Msg.CODE_NOT_IN_VALUE_SET, f"{at}.coding", code=shown, value_set=value_set.url)]


def _target_type(reference: dict[str, t.Any]) -> str | None:
    """The resource type a Reference names: from ``Type/id`` (also at the end of an absolute URL), or
    its ``type``. None when it cannot tell (a contained ``#id``, a logical reference without type)."""
    literal = reference.get("reference")
    if isinstance(literal, str) and not literal.startswith(("#", "urn:")):
        parts = literal.split("?")[0].rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[:parts.index("_history")]
        return parts[-2] if len(parts) >= 2 else None
    kind = reference.get("type")
    return kind if isinstance(kind, str) else None
