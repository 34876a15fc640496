"""The CapabilityStatement, generated from what the server really does: its routes give the
interactions and operations of each resource type, the search table gives the parameters and includes.
"""

from __future__ import annotations

import re
import typing as t

from .definitions import DEFAULT_PROFILES, Definitions
from .service.search import INCLUDES, PARAMETERS, RESULT_PARAMETERS, REVINCLUDES
from .version import VERSION as SOFTWARE_VERSION

# Interaction codes (FHIR restful-interaction) by HTTP method and the route's shape after the type.
_INTERACTIONS = {
    ("POST", ""): "create",
    ("GET", ""): "search-type",
    ("GET", "/<id>"): "read",
    ("GET", "/<id>/_history/<vid>"): "vread",
    ("PUT", "/<id>"): "update",
    ("GET", "/_history"): "history-type",
    ("GET", "/<id>/_history"): "history-instance",
}
# System interactions by HTTP method and route: POST [base] takes a batch or a transaction Bundle.
_SYSTEM_INTERACTIONS = {("POST", "/"): ("transaction", "batch")}
_SYSTEM_DOCUMENTATION = {
    "transaction": "POST [base] with a Bundle of type transaction: all entries or none; 501 where the database "
                   "cannot run multi-document transactions (a standalone MongoDB)",
    "batch": "POST [base] with a Bundle of type batch: each entry on its own",
}
# Reads that answer 304 to If-None-Match (an ETag) and If-Modified-Since (Last-Modified): those of
# versioned records, which have both; conformance resources carry neither.
CONDITIONAL_READ = "full-support"
_DOCUMENTATION = {
    "PractitionerRole": {
        "create": "Create a PractitionerRole under the HPI rules; the server issues its hpi-practitionerrole-id. "
                  "If-None-Exist: identifier=[system|]value makes it conditional; with an Idempotency-Key header "
                  "a replay within 24 h gets the first answer",
        "update": "Update contact details, messaging address, period and status reason; If-Match is required",
        "search-type": "Search by hpi-person-id and other parameters; always a Bundle",
    },
    **{rtype: {
        "create": f"Create a {rtype} (reference data); its id is its official HPI identifier. "
                  "If-None-Exist: identifier=[system|]value makes it conditional",
        "update": "Update with If-Match; the official HPI identifier cannot change",
        "vread": "The current version only: earlier versions are not kept",
    } for rtype in ("Practitioner", "Organization", "Location")},
    "Provenance": {
        "read": "Who wrote a version: its id is Type-id-version of the version; needs the admin scope of that type",
        "search-type": "By target (Type/id or Type/id/_history/n); needs the admin scope of the target's type",
    },
}
# What a type that clients cannot write is.
_READ_ONLY = {"Provenance": "Written by the server with every version of a PractitionerRole, Practitioner, Organization "
                            "or Location: who made it (userid, client, API key), when, create or update"}
# How a CapabilityStatement says SMART (SMART App Launch 1.0, "Conformance"): the security service
# code, and the extension that names the OAuth endpoints (here the token endpoint alone: no user launch).
SMART_SERVICE = {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
                 "display": "SMART-on-FHIR"}
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_ROUTE = re.compile(r"^/(?P<type>[A-Z][A-Za-z]+)(?P<rest>/.*)?$")


class Route(t.NamedTuple):
    rule: str
    methods: frozenset[str]


def _shape(rest: str) -> str:
    return re.sub(r"<[^>]+>", lambda m: "<vid>" if "vid" in m.group(0) else "<id>", rest)


def interactions(routes: t.Iterable[Route]) -> dict[str, dict[str, set[str]]]:
    """Resource type → {"interactions": codes, "operations": names}, read off the routes."""
    found: dict[str, dict[str, set[str]]] = {}
    for route in routes:
        m = _ROUTE.match(route.rule)
        if not m or m["type"] not in PARAMETERS:
            continue
        entry = found.setdefault(m["type"], {"interactions": set(), "operations": set()})
        shape = _shape(m["rest"] or "")
        if shape.rsplit("/", 1)[-1].startswith("$"):
            entry["operations"].add(shape.rsplit("/", 1)[-1][1:])
        for method in route.methods:
            code = _INTERACTIONS.get((method, shape))
            if code:
                entry["interactions"].add(code)
    return found


def system_interactions(routes: t.Iterable[Route]) -> list[str]:
    """The whole-system interaction codes the routes serve (transaction, batch)."""
    return [code for route in routes for method in sorted(route.methods)
            for code in _SYSTEM_INTERACTIONS.get((method, route.rule), ())]


def _operation_definition(rtype: str, name: str) -> str:
    """The canonical of a core operation: $validate is defined on Resource, the others on their type."""
    return f"http://hl7.org/fhir/OperationDefinition/{'Resource' if name == 'validate' else rtype}-{name}"


def capability_statement(routes: t.Iterable[Route], base_url: str, started: str, definitions: Definitions, *,
                         token_url: str, scope_prefix: str) -> dict[str, t.Any]:
    routes = list(routes)
    order = list(dict.fromkeys(_INTERACTIONS.values()))
    resources = []
    for rtype, offered in sorted(interactions(routes).items()):
        docs = _DOCUMENTATION.get(rtype, {})
        resource: dict[str, t.Any] = {"type": rtype}
        if rtype in DEFAULT_PROFILES:
            resource.update(profile=DEFAULT_PROFILES[rtype], supportedProfile=definitions.known_profiles(rtype))
        resource["interaction"] = [{"code": code, **({"documentation": docs[code]} if code in docs else {})}
                                   for code in order if code in offered["interactions"]]
        if "vread" in offered["interactions"]:
            resource["conditionalRead"] = CONDITIONAL_READ
        if "create" in offered["interactions"]:
            resource.update(
                versioning="versioned-update",
                # vread of past versions; Practitioner, Organization and Location keep only their current one.
                readHistory="history-instance" in offered["interactions"],
                updateCreate=False,
                conditionalCreate=True,
                conditionalUpdate=False,
                conditionalDelete="not-supported",
            )
        else:
            resource["documentation"] = _READ_ONLY.get(rtype, "Read-only: the conformance resources the server enforces, "
                                                              "from its profiles folder")
        if INCLUDES.get(rtype):
            resource["searchInclude"] = sorted(INCLUDES[rtype])
        if REVINCLUDES.get(rtype):
            resource["searchRevInclude"] = sorted(REVINCLUDES[rtype])
        resource["searchParam"] = [{"name": p.name, "type": p.type, "documentation": p.documentation}
                                   for p in [*PARAMETERS[rtype], *RESULT_PARAMETERS.get(rtype, [])]]
        if offered["operations"]:
            resource["operation"] = [{"name": name, "definition": _operation_definition(rtype, name)}
                                     for name in sorted(offered["operations"])]
        resources.append(resource)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": "fhir-server",
        "kind": "instance",
        "software": {"name": "fhir-server", "version": SOFTWARE_VERSION},
        "implementation": {"description": "HPI PractitionerRole FHIR server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json", "json"],
        "rest": [{
            "mode": "server",
            "security": _security(token_url, scope_prefix),
            "resource": resources,
            "interaction": [{"code": code, "documentation": _SYSTEM_DOCUMENTATION[code]}
                            for code in system_interactions(routes)],
        }],
    }


def _security(token_url: str, scope_prefix: str) -> dict[str, t.Any]:
    """SMART Backend Services, as SPEC.md §6 says the HPI protects its calls."""
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
        "service": [{"coding": [SMART_SERVICE], "text": "SMART Backend Services (client_credentials, private_key_jwt)"}],
        "description": "Every request but /metadata, /openapi.json and the OAuth endpoints "
                       "(/.well-known/smart-configuration, the token endpoint and its key set) needs: "
                       "Authorization: Bearer with an access token from the token endpoint (client_credentials grant, "
                       "authenticated by a client assertion signed ES384 or RS384 with a registered key; 401 with "
                       "WWW-Authenticate without a valid one); the x-api-key issued with the same client (403 without); "
                       "a userid header naming the person making the request (401 without); and a User-Agent (400 "
                       f"without). Scopes are per resource type and interaction, e.g. {scope_prefix}PractitionerRole.r: "
                       ".r read, vread and history, .s search, .c create, .u update, .a admin (confidential records "
                       "whole, their label, merges, Provenance); a call outside the token's scopes gets 403 naming the "
                       "scope it needs. Each key may make a limited number of requests per window, reported in "
                       "RateLimit-* headers; past it, 429 with Retry-After.",
    }
