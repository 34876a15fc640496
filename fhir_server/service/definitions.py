"""The StructureDefinitions, ValueSets and CodeSystems the server enforces, served read-only: read,
search by url, name and version, ``ValueSet/$expand`` and ``$validate-code`` (terminology-service.html).

They come from ``profiles/`` at start-up (:mod:`..definitions`), not from the database: to change one,
edit the file and restart.
"""

from __future__ import annotations

import datetime as dt
import typing as t
import uuid

from ..instants import format_instant
from ..outcome import Msg, RequestRejected, issue
from ..store.queries import Page
from ..terminology import ValueSet, whole_code_system
from .context import Context
from .search import PARAMETERS, Query, is_number, parse_paging

KINDS = ("StructureDefinition", "ValueSet", "CodeSystem")
MAX_EXPANSION = 2000  # more codes than any value set here holds; a larger one must be paged with count


def read_definition(kind: str, rid: str, ctx: Context) -> dict[str, t.Any]:
    found = ctx.definitions.get(kind, rid)
    if found is None:
        raise RequestRejected(issue(Msg.NOT_FOUND, f"{kind}.id", id=rid))
    return found


def search_definitions(kind: str, args: t.Iterable[tuple[str, str]], strict: bool, ctx: Context) -> tuple[Query, Page]:
    """Matches on ``url`` (``url|version`` too), ``version`` and ``_id`` (exact), and ``name`` (starts
    with, any case, as string parameters do); commas within a value mean "or"."""
    args = list(args)
    query = parse_paging(args)
    known = {p.name for p in PARAMETERS[kind]}
    wanted: dict[str, set[str]] = {}
    for name, value in args:
        if name in ("_count", "_offset", "_format", "_pretty"):
            continue
        if name not in known:
            if strict:
                raise RequestRejected(issue(Msg.SEARCH_PARAM_UNKNOWN, name=name, type=kind))
            continue
        if name == "url" and "|" in value:
            value, version = value.split("|", 1)
            wanted.setdefault("version", set()).update(version.split(","))
        wanted.setdefault(name.lstrip("_"), set()).update(value.split(","))
        query.used.append((name, value))

    def matches(resource: dict[str, t.Any], key: str, values: set[str]) -> bool:
        if key == "name":
            return any(str(resource.get(key, "")).casefold().startswith(v.casefold()) for v in values)
        return resource.get(key) in values

    found = [r for r in ctx.definitions.resources[kind].values() if all(matches(r, k, v) for k, v in wanted.items())]
    return query, Page(len(found), found[query.offset:query.offset + query.count])


def _value_set(args: t.Mapping[str, str], vs_id: str | None, operation: str, ctx: Context) -> ValueSet:
    if vs_id is not None:
        url = read_definition("ValueSet", vs_id, ctx)["url"]
    elif args.get("url"):
        url = args["url"].split("|")[0]
    else:
        raise RequestRejected(issue(Msg.OPERATION_PARAM_REQUIRED, operation=operation, name="url"))
    if url not in ctx.definitions.value_sets:
        raise RequestRejected(issue(Msg.CANONICAL_UNKNOWN, type="ValueSet", url=url))
    return ctx.definitions.value_sets[url]


def expand(args: t.Mapping[str, str], vs_id: str | None, ctx: Context) -> dict[str, t.Any]:
    """``$expand``: the value set's codes, those whose code or display contains ``filter`` (any case),
    from ``offset``, at most ``count``."""
    value_set = _value_set(args, vs_id, "$expand", ctx)
    definition = ctx.definitions.by_url("ValueSet", value_set.url) or {}
    text = args.get("filter", "").casefold()
    offset, count = _number(args, "offset", 0), _number(args, "count", MAX_EXPANSION)
    matched = [c for c in value_set.concepts if text in c.code.casefold() or text in (c.display or "").casefold()]
    parameters = [{"name": "offset", "valueInteger": offset}, {"name": "count", "valueInteger": min(count, MAX_EXPANSION)}]
    if text:
        parameters.insert(0, {"name": "filter", "valueString": args["filter"]})
    expansion = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": format_instant(dt.datetime.now(dt.timezone.utc)),
        "total": len(matched),
        "offset": offset,
        "parameter": parameters,
        "contains": [{"system": c.system, **({"version": c.version} if c.version else {}), "code": c.code,
                      **({"display": c.display} if c.display else {})}
                     for c in matched[offset:offset + min(count, MAX_EXPANSION)]],
    }
    if not expansion["contains"]:
        del expansion["contains"]
    header: dict[str, t.Any] = {k: definition[k] for k in ("id", "url", "version", "name", "title", "status") if k in definition}
    return {"resourceType": "ValueSet", **header, "expansion": expansion}


def validate_code(kind: str, args: t.Mapping[str, str], rid: str | None, ctx: Context) -> dict[str, t.Any]:
    """``$validate-code`` of a CodeSystem (``url``, ``code``) or a ValueSet (``url``, ``system``,
    ``code``); ``display``, if given, must be the code's. Answers Parameters with ``result``."""
    operation = "$validate-code"
    if not args.get("code"):
        raise RequestRejected(issue(Msg.OPERATION_PARAM_REQUIRED, operation=operation, name="code"))
    if kind == "ValueSet":
        value_set, system = _value_set(args, rid, operation, ctx), args.get("system")
    else:
        resource = read_definition(kind, rid, ctx) if rid else None
        system = resource["url"] if resource else args.get("url", "").split("|")[0]
        if not system:
            raise RequestRejected(issue(Msg.OPERATION_PARAM_REQUIRED, operation=operation, name="url"))
        resource = resource or ctx.definitions.by_url("CodeSystem", system)
        if resource is None:
            raise RequestRejected(issue(Msg.CANONICAL_UNKNOWN, type="CodeSystem", url=system))
        value_set = whole_code_system(resource)
    code, display = args["code"], args.get("display")
    concept = value_set.find(system, code)
    out: list[dict[str, t.Any]] = [{"name": "result", "valueBoolean": concept is not None and display in (None, concept.display)}]
    if concept is None:
        missing = (issue(Msg.CODE_NOT_IN_VALUE_SET, code=code, value_set=value_set.url) if kind == "ValueSet"
                   else issue(Msg.CODE_NOT_IN_CODE_SYSTEM, code=code, code_system=system))
        out.append({"name": "message", "valueString": missing.diagnostics})
    elif display not in (None, concept.display):
        out.append({"name": "message", "valueString": issue(Msg.DISPLAY_WRONG, code=code, display=concept.display).diagnostics})
    if concept is not None and concept.display:
        out.append({"name": "display", "valueString": concept.display})
    return {"resourceType": "Parameters", "parameter": out}


def _number(args: t.Mapping[str, str], name: str, default: int) -> int:
    value = args.get(name)
    if value is None:
        return default
    if not (is_number(value) and len(value) <= 9):
        raise RequestRejected(issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value))
    return int(value)
