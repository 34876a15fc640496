"""Search parameters (https://hl7.org/fhir/R4/search.html): which ones each resource type supports,
the values a stored record is matched on, and parsing a query into criteria.

One table, :data:`PARAMETERS`, is the truth for three readers: :func:`search_fields` (what is stored
beside each record), :func:`parse_search` (what a query may ask) and the CapabilityStatement.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import typing as t
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from ..identifiers import is_valid_cpn
from ..instants import last_updated, parse_instant
from ..outcome import Issue, Msg, RequestRejected, issue
from ..store.queries import MAX_CANDIDATES, Criterion, TooManyCandidates
from ..validation.dates import OPEN_END, OPEN_START
from . import subsets
from .confidentiality import SEARCH_FIELD, is_confidential
from .context import NZ, Context

DEFAULT_COUNT = 10
MAX_COUNT = 50
# Search pages by _offset within what its index narrows to (a practitioner's roles); as many as the
# server filters itself, no further.
MAX_OFFSET = MAX_CANDIDATES
_MAX_NUMBER = 2**31 - 1  # beyond any page or count: not a number this server reads
TOTALS = ("none", "estimate", "accurate")


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: t.Literal["reference", "token", "date", "uri", "string", "number", "special"]
    documentation: str
    target: str | None = None  # the resource type a reference parameter points at


_ID = SearchParam("_id", "token", "The logical id of the resource")
_LAST_UPDATED = SearchParam("_lastUpdated", "date", "When the resource version was stored (eq, ne, gt, ge, lt, le)")

PARAMETERS: dict[str, list[SearchParam]] = {
    "PractitionerRole": [
        SearchParam("practitioner", "reference", "Required. The hpi-person-id (live or dormant) of the practitioner; "
                    "a dormant id finds the same roles as the live one", "Practitioner"),
        SearchParam("organization", "reference", "The hpi-organisation-id of the organisation", "Organization"),
        SearchParam("location", "reference", "The hpi-facility-id of the facility", "Location"),
        SearchParam("role", "token", "The role code ([system|]code)"),
        SearchParam("active", "token", "true: roles whose period holds today (New Zealand date); false: the others"),
        SearchParam("identifier", "token", "An identifier of the role ([system|]value), e.g. its hpi-practitionerrole-id"),
        _ID,
        _LAST_UPDATED,
    ],
    **{rtype: [SearchParam("identifier", "token", f"An identifier of the {rtype.lower()} ([system|]value), live or dormant"),
               _ID, _LAST_UPDATED]
       for rtype in ("Practitioner", "Organization", "Location")},
}
# Provenance is searched by its target only (service/provenance.py reads the query).
PARAMETERS["Provenance"] = [SearchParam("target", "reference", "Required. The record (Type/id) whose Provenances are wanted, "
                                        "newest first, or one version of it (Type/id/_history/n)")]
PARAMETERS.update({kind: [SearchParam("url", "uri", f"The canonical url of the {kind} (url or url|version)"),
                          SearchParam("version", "token", "Its business version"),
                          SearchParam("name", "string", "Its computable name (exact)"), _ID]
                   for kind in ("StructureDefinition", "ValueSet", "CodeSystem")})
# _include values per resource type: "PractitionerRole:practitioner" → the reference element it follows.
INCLUDES = {"PractitionerRole": {f"PractitionerRole:{name}": name for name in ("practitioner", "organization", "location")}}
# _revinclude values per resource type: "PractitionerRole:organization" → the role search parameter
# that points at the matches.
REVINCLUDES = {target: {f"PractitionerRole:{name}": name} for name, target in
               (("practitioner", "Practitioner"), ("organization", "Organization"), ("location", "Location"))}
# At most this many records are included by _revinclude for one page (an organisation may have many
# roles); more are left out with a warning.
MAX_REVINCLUDE = 100
# Filters of FHIR's search syntax that this server does not apply: refused whatever the handling, as
# ignoring one would widen the result (chaining, "organization.name=", is caught by its ".").
REFUSED = ("_has", "_filter", "_query", "_list", "_text", "_content", "_containedType", "_contained")
REQUIRED = {"PractitionerRole": "practitioner"}
# Result parameters (search.html#return) by resource type, listed beside PARAMETERS in the
# CapabilityStatement: a result parameter a search takes is added here, and is listed.
_COUNT = SearchParam("_count", "number", f"Results a page (default {DEFAULT_COUNT}, at most {MAX_COUNT})")
_OFFSET = SearchParam("_offset", "number", f"Results skipped (at most {MAX_OFFSET})")
# What parse_search reads besides paging: the searches of records (not Provenance or conformance resources).
_SUBSETS = [SearchParam("_sort", "special", "Sort keys, comma-separated, any search parameter or _lastUpdated; "
                        "'-' for descending"),
            SearchParam("_summary", "token", "true, text, data, count or false"),
            SearchParam("_elements", "special", "Top-level elements to return, comma-separated"),
            SearchParam("_total", "token", "none or accurate (estimate is accurate)")]
RESULT_PARAMETERS: dict[str, list[SearchParam]] = {
    rtype: [_COUNT, _OFFSET,
            *(_SUBSETS if rtype in ("PractitionerRole", "Practitioner", "Organization", "Location") else []),
            *([SearchParam("_include", "special", "Adds the records the results refer to: "
                           + ", ".join(sorted(INCLUDES[rtype])))] if rtype in INCLUDES else []),
            *([SearchParam("_revinclude", "special", "Adds the roles that refer to the results: "
                           + ", ".join(sorted(REVINCLUDES[rtype])))] if rtype in REVINCLUDES else [])]
    for rtype in PARAMETERS}
# Reference values that must be a well-formed id, and the error if not: SPEC.md §3.4 "A PractitionerRole
# search request must include a valid hpi-person-id" (an empty Bundle would hide the caller's mistake).
WELL_FORMED = {("PractitionerRole", "practitioner"): (is_valid_cpn, Msg.PRACTITIONER_INVALID)}


def _include_target(resource_type: str, element: str) -> str | None:
    return next((p.target for p in PARAMETERS[resource_type] if p.name == element), None)


# --- what is stored beside a record -------------------------------------------------------------------

def tokens(system: str | None, value: str | None) -> list[str]:
    """The forms a token parameter may take for one coding or identifier: ``system|value``, ``value``,
    and ``system|`` (any value of the system); ``|value`` when it has no system."""
    if not value:
        return []
    return [f"{system}|{value}", value, f"{system}|"] if system else [f"|{value}", value]


def _reference_id(ref: dict[str, t.Any] | None) -> list[str]:
    literal = (ref or {}).get("reference", "")
    return [literal.rsplit("/", 1)[-1]] if literal else []


def search_fields(resource: dict[str, t.Any]) -> dict[str, t.Any]:
    """The values each search parameter of the resource's type matches, stored beside it."""
    fields: dict[str, t.Any] = {
        "_id": [resource["id"]],
        "_lastUpdated": last_updated(resource),
        "identifier": [tok for i in resource.get("identifier", []) for tok in tokens(i.get("system"), i.get("value"))],
    }
    if resource["resourceType"] != "PractitionerRole":
        return fields
    period = resource.get("period")
    if period:
        active = {"from": period.get("start", OPEN_START), "to": period.get("end", OPEN_END)}
    else:  # no period: active always, or never (the stored flag decides; see read_practitioner_role)
        active = {"from": OPEN_START, "to": OPEN_END} if resource.get("active", True) else {"from": OPEN_END, "to": OPEN_START}
    return {
        **fields,
        "practitioner": _reference_id(resource.get("practitioner")),
        "organization": _reference_id(resource.get("organization")),
        "location": _reference_id((resource.get("location") or [None])[0]),
        "role": [tok for code in resource.get("code", []) for c in code.get("coding", [])
                 for tok in tokens(c.get("system"), c.get("code"))],
        "active": active,
        # Marks a confidential role, for searches on what it hides (see .confidentiality); absent otherwise.
        **({SEARCH_FIELD: True} if is_confidential(resource) else {}),
    }


def identifier_keys(resource: dict[str, t.Any]) -> list[str]:
    """``system|value`` of each identifier: no two records of a type may share one."""
    return sorted({f"{i['system']}|{i['value']}" for i in resource.get("identifier", []) if i.get("system") and i.get("value")})


def condition_identifier(condition: str, resource: t.Mapping[str, t.Any] | None = None) -> str:
    """The ``[system|]value`` of ``If-None-Exist: identifier=…`` (URL-encoded or not, after an optional
    ``Type?``). If ``resource`` is given, the condition must name an identifier it carries: only then
    does the unique index on identifiers make a conditional create safe against a concurrent one.

    :raises RequestRejected: 400 for any other condition.
    """
    pairs = parse_qsl(condition.split("?", 1)[-1], keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "identifier" or not pairs[0][1]:
        raise RequestRejected(issue(Msg.CONDITION_INVALID))
    token = pairs[0][1]
    if resource is not None:
        carried = {tok for i in resource.get("identifier", []) for tok in tokens(i.get("system"), i.get("value"))}
        if token not in carried:
            raise RequestRejected(issue(Msg.CONDITION_NOT_IN_RESOURCE, identifier=token))
    return token


def one_match(found: list[dict[str, t.Any]]) -> dict[str, t.Any] | None:
    """The record a conditional create found, or None; 412 if it found several."""
    if len(found) > 1:
        raise RequestRejected(issue(Msg.CONDITION_AMBIGUOUS, count=len(found)))
    return found[0] if found else None


# --- what a query asks --------------------------------------------------------------------------------

@dataclass
class Query:
    criteria: list[Criterion] = field(default_factory=list)
    offset: int = 0
    count: int = DEFAULT_COUNT
    includes: list[str] = field(default_factory=list)
    after: tuple[t.Any, ...] | None = None  # history: the key of the last entry of the previous page
    counted: bool = True  # whether the Bundle carries a total
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (search field, ascending)
    summary: str | None = None
    elements: list[str] | None = None
    revincludes: list[str] = field(default_factory=list)  # the role search parameters to follow back
    # What was ignored or cut (lenient handling): warnings for the Bundle's outcome entry.
    warnings: list[Issue] = field(default_factory=list)
    # The parameters understood, in order, for the Bundle's self and paging links.
    used: list[tuple[str, str]] = field(default_factory=list)
    # The reference records the criteria named, as read to match them (live key → record): an
    # _include of one of them needs no second read.
    records: dict[str, dict[str, t.Any]] = field(default_factory=dict)


_DATE = re.compile(r"(eq|ne|gt|ge|lt|le)?([0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?)")


def _date_range(value: str) -> tuple[str, dt.datetime, dt.datetime] | None:
    """A FHIR date search value → (prefix, low, high): the instants its precision covers, [low, high)."""
    m = _DATE.fullmatch(value)
    if not m:
        return None
    prefix, text = m.group(1) or "eq", m.group(2)
    try:
        if len(text) == 4:
            low, high = dt.datetime(int(text), 1, 1), dt.datetime(int(text) + 1, 1, 1)
        elif len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            low, high = dt.datetime(year, month, 1), dt.datetime(year + month // 12, month % 12 + 1, 1)
        elif len(text) == 10:
            low = dt.datetime.fromisoformat(text)
            high = low + dt.timedelta(days=1)
        else:
            low = parse_instant(text)
            time = text[11:19]  # HH:MM or HH:MM:SS, then fractions and zone
            step = (dt.timedelta(milliseconds=1) if "." in text
                    else dt.timedelta(minutes=1) if time.count(":") == 1 else dt.timedelta(seconds=1))
            high = low + step
        # A value without a zone is read as a New Zealand time, where HPI records are kept; the
        # database compares in UTC, which may step outside the calendar too.
        low, high = ((d if d.tzinfo else d.replace(tzinfo=NZ)).astimezone(dt.timezone.utc) for d in (low, high))
    except (ValueError, OverflowError):  # beyond the calendar: year 0, or past 9999
        return None
    return prefix, low, high


def _date_criterion(name: str, value: str) -> Criterion | None:
    parsed = _date_range(value)
    if parsed is None:
        return None
    prefix, low, high = parsed
    bounds = {"eq": (low, high, True), "ne": (low, high, False), "gt": (high, None, True), "ge": (low, None, True),
              "lt": (None, low, True), "le": (None, high, True)}[prefix]
    return Criterion(name, "between", bounds)


def _token_values(param: SearchParam, value: str) -> list[str] | None:
    if param.name == "active":
        return None if value not in ("true", "false") else [value]
    if param.type == "reference":
        values = [v.rstrip("/").split("/") for v in value.split(",") if v]
        # An id, "Type/id" or an absolute URL: a type, if given, must be the parameter's target.
        if any(len(v) > 1 and v[-2] != param.target for v in values):
            return None
        return [v[-1] for v in values]
    return [v for v in value.split(",") if v]


def is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _set_paging(query: Query, name: str, value: str) -> list[Issue]:
    if not (is_number(value) and int(value) <= _MAX_NUMBER):
        return [issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value)]
    if name == "_count":
        if int(value) > MAX_COUNT:
            query.warnings.append(issue(Msg.SEARCH_COUNT_CUT, value=value, limit=MAX_COUNT))
        query.count = min(int(value), MAX_COUNT)
    elif int(value) > MAX_OFFSET:
        return [issue(Msg.SEARCH_OFFSET_TOO_LARGE, limit=MAX_OFFSET)]
    else:
        query.offset = int(value)
    return []


def parse_paging(args: t.Iterable[tuple[str, str]]) -> Query:
    """``_count`` and ``_offset`` of a search of what is held in memory; other parameters are ignored."""
    query, issues = Query(), []
    for name, value in args:
        if name in ("_count", "_offset"):
            issues += _set_paging(query, name, value)
    if issues:
        raise RequestRejected(issues)
    return query


def parse_read(resource_type: str, args: t.Iterable[tuple[str, str]]) -> Query:
    """``_summary`` and ``_elements`` of a read (search.html#summary applies to reads too); other
    parameters are ignored, as before.

    :raises RequestRejected: 400 for a value they cannot take (``_summary=count`` among them).
    """
    query, issues = Query(), []
    for name, value in args:
        if name in ("_summary", "_elements"):
            problem = _set_result(query, {}, resource_type, name, value)
            if problem or query.summary == "count":
                issues.append(problem or issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value))
    if issues:
        raise RequestRejected(issues)
    return query


# --- history pages ------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def page_token(after: tuple[t.Any, ...]) -> str:
    """The ``_page`` of the next link: the key of the last entry served, ``(vid,)`` within one role or
    ``(updated, version id)`` across roles, opaque to clients."""
    key = [after[0]] if len(after) == 1 else [(after[0] - _EPOCH) // dt.timedelta(milliseconds=1), after[1]]
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _read_token(value: str, one_role: bool) -> tuple[t.Any, ...] | None:
    """The key a :func:`page_token` encodes, if it is one of the kind this history pages by."""
    if len(value) > 200:  # far longer than any key; and JSON nested deep enough would break the parser
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):  # not base64, not UTF-8, not JSON
        return None
    if not isinstance(key, list) or not all(type(k) in (int, str) for k in key):
        return None
    if one_role:
        return (key[0],) if len(key) == 1 and type(key[0]) is int and 0 < key[0] <= _MAX_NUMBER else None
    if len(key) != 2 or type(key[0]) is not int or type(key[1]) is not str or len(key[1]) > 100:
        return None
    try:
        return _EPOCH + dt.timedelta(milliseconds=key[0]), key[1]
    except OverflowError:
        return None


def parse_history(args: t.Iterable[tuple[str, str]], one_role: bool) -> Query:
    """``_count``, ``_page`` (the next link's key) and ``_total`` of a history request; history pages
    by key, so ``_offset`` is refused rather than ignored (ignoring it would serve the first page
    again to a client stepping through offsets). Other parameters are ignored.

    A total is counted only if asked (``_total=accurate``): across roles it costs a count of the
    whole collection, and FHIR lets a Bundle leave it out.
    """
    query, issues = Query(counted=False), []
    for name, value in args:
        if name == "_count":
            issues += _set_paging(query, name, value)
        elif name == "_offset":
            issues.append(issue(Msg.HISTORY_OFFSET_UNSUPPORTED))
        elif name == "_page":
            query.after = _read_token(value, one_role)
            if query.after is None:
                issues.append(issue(Msg.PAGE_TOKEN_INVALID, value=value))
        elif name == "_total":
            if value not in TOTALS:
                issues.append(issue(Msg.TOTAL_INVALID, value=value))
            else:
                query.counted = value == "accurate"
                query.used.append((name, value))
    if issues:
        raise RequestRejected(issues)
    return query


def parse_search(resource_type: str, args: t.Iterable[tuple[str, str]], strict: bool, ctx: Context) -> Query:
    """Read a search's parameters. Unknown parameters are errors if ``strict`` (``Prefer:
    handling=strict``), else ignored, each with a warning for the Bundle (:attr:`Query.warnings`);
    values a parameter cannot take are always errors (400), and so are the filters of
    :data:`REFUSED`, whose absence would widen the result.

    :raises RequestRejected: listing every parameter in error, or the missing required one (422).
    """
    known = {p.name: p for p in PARAMETERS[resource_type]}
    query, issues = Query(), []
    references: list[tuple[str, list[str]]] = []

    def unsupported(name: str, value: str, strict_error: Issue) -> None:
        if strict:
            issues.append(strict_error)
        else:
            query.warnings.append(issue(Msg.SEARCH_IGNORED, name=name, value=value, type=resource_type))

    for name, value in args:
        base, _, modifier = name.partition(":")
        param = known.get(base)
        if name in ("_format", "_pretty"):
            continue
        if name in ("_count", "_offset"):
            issues += _set_paging(query, name, value)
            continue
        if base in REFUSED or "." in base:
            issues.append(issue(Msg.SEARCH_FILTER_UNSUPPORTED, name=name))
            continue
        if name in ("_include", "_revinclude"):
            followed = _follow(resource_type, name, value)
            if followed is None:
                unknown = Msg.SEARCH_INCLUDE_UNKNOWN if name == "_include" else Msg.SEARCH_REVINCLUDE_UNKNOWN
                unsupported(name, value, issue(unknown, value=value, type=resource_type))
            else:
                (query.includes if name == "_include" else query.revincludes).append(followed)
                query.used.append((name, value))
            continue
        if name in ("_sort", "_summary", "_elements", "_total"):
            problem = _set_result(query, known, resource_type, name, value)
            if problem:
                issues.append(problem)
            else:
                query.used.append((name, value))
            continue
        if param is None:
            unsupported(name, value, issue(Msg.SEARCH_PARAM_UNKNOWN, name=name, type=resource_type))
            continue
        if modifier and not (param.type == "reference" and modifier == param.target):
            # Ignoring a modifier would widen the search (":not" turned inside out): always refused.
            issues.append(issue(Msg.SEARCH_MODIFIER_UNSUPPORTED, name=name))
            continue
        if param.type == "date":
            criterion = _date_criterion(base, value)
            if criterion is None:
                issues.append(issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value))
            else:
                query.criteria.append(criterion)
                query.used.append((name, value))
            continue
        values = _token_values(param, value)
        if not values:
            issues.append(issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value))
            continue
        query.used.append((name, value))
        if param.name == "active":
            query.criteria.append(Criterion("active", "active_on", (ctx.today(), values[0] == "true")))
        elif param.type == "reference":
            check = WELL_FORMED.get((resource_type, param.name))
            if check and not all(check[0](v) for v in values):
                issues.append(issue(check[1], f"{resource_type}.{param.name}"))
                continue
            references.append((base, [f"{param.target}/{v}" for v in values]))
        else:
            query.criteria.append(Criterion(base, "any", tuple(values)))
    if issues:
        raise RequestRejected(issues)
    required = REQUIRED.get(resource_type)
    if required and not any(name == required for name, _ in references):
        raise RequestRejected(issue(Msg.SEARCH_PRACTITIONER_REQUIRED, required))
    if query.summary == "count":
        query.count = 0
    query.criteria += _to_live_ids(references, query, ctx)
    return query


def _follow(resource_type: str, name: str, value: str) -> str | None:
    """The element an ``_include`` follows, or the role parameter a ``_revinclude`` follows back;
    None if the server does not serve it. The value may name the target type
    ("PractitionerRole:practitioner:Practitioner")."""
    source, _, rest = value.partition(":")
    element, _, target = rest.partition(":")
    if name == "_include":
        table, expected = INCLUDES.get(resource_type, {}), _include_target(resource_type, element)
    else:
        table, expected = REVINCLUDES.get(resource_type, {}), resource_type
    wanted = f"{source}:{element}"
    return table[wanted] if wanted in table and target in ("", expected) else None


def _set_result(query: Query, known: dict[str, SearchParam], resource_type: str, name: str, value: str) -> Issue | None:
    """Set one of ``_sort``, ``_summary``, ``_elements``, ``_total``; the problem with its value, if any."""
    invalid = issue(Msg.SEARCH_VALUE_INVALID, name=name, value=value)
    if name == "_total":
        if value not in TOTALS:
            return issue(Msg.TOTAL_INVALID, value=value)
        query.counted = value != "none"  # an estimate is as cheap as the accurate count here
    elif name == "_summary":
        if value not in subsets.SUMMARIES:
            return invalid
        query.summary = value
    elif name == "_elements":
        names = [v for v in value.split(",") if v]
        if not names or not set(names) <= subsets.elements(resource_type).all:
            return invalid
        query.elements = [*(query.elements or []), *names]
    else:
        keys = [(k[1:], False) if k.startswith("-") else (k, True) for k in value.split(",")]
        if not keys or any(k not in known for k, _ in keys):
            return invalid
        query.sort += keys
    return None


def too_broad(e: TooManyCandidates) -> RequestRejected:
    """The refusal of a search that would read too many records to apply some of its conditions."""
    return RequestRejected(issue(Msg.SEARCH_TOO_BROAD, limit=MAX_CANDIDATES, params=", ".join(sorted(e.fields))))


def _to_live_ids(references: list[tuple[str, list[str]]], query: Query, ctx: Context) -> list[Criterion]:
    """Reference values name a record by any of its ids, dormant ones included: match the live id.
    One round trip for all of them; an id no record has is kept, and matches nothing. The records
    found are kept on ``query`` for its ``_include``."""
    found = ctx.store.references.resolve([k for _, keys in references for k in keys]) if references else {}
    query.records.update((target.key, target.resource) for target in found.values() if target.resource is not None)
    return [Criterion(name, "any", tuple(found[k].id if k in found else k.split("/", 1)[1] for k in keys))
            for name, keys in references]
