"""``GET /openapi.json``: an OpenAPI 3 description of the server, open to all as ``/metadata`` is, and
generated as the CapabilityStatement is: the paths from the app's routes, the search parameters from
the search table, the plain-JSON API's request body from its marshmallow schema. Clients and fuzzers
(``make reliability``) read it.

FHIR bodies are described as objects of their ``resourceType``: their rules are the profiles'
(``/StructureDefinition``), which JSON Schema cannot say.
"""

from __future__ import annotations

import re
import typing as t

from flask import Blueprint, Response, current_app, jsonify
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields, validate

from ..auth.scopes import ALL, HPI_SCOPE_PREFIX
from ..capabilities import Route
from ..service.plain_role import PATH_PREFIX
from ..service.search import INCLUDES, MAX_OFFSET, PARAMETERS, TOTALS
from ..validation.plain_role import PractitionerRoleRequest
from ..version import VERSION
from .documents import document_text
from .oauth import JWKS_PATH, TOKEN_PATH
from .responses import FHIR_JSON, FORMATS, base_url

bp = Blueprint("openapi", __name__)

PUBLIC_PATHS = {"/metadata", "/openapi.json", "/.well-known/smart-configuration", TOKEN_PATH, JWKS_PATH,
                "/healthz", "/readyz", "/metrics"}  # /metrics has its own guard (METRICS), outside the API's
_IGNORED_METHODS = {"HEAD", "OPTIONS"}
_PATH_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# The query parameters of the terminology operations (terminology-service.html), by operation.
_OPERATION_PARAMETERS = {"$expand": ("url", "filter", "count", "offset"), "$validate-code": ("url", "system", "code", "display")}
_OBJECT = {"type": "object"}


@bp.get("/openapi.json")
def openapi_view() -> Response:
    text = document_text("openapi", _document, _json, base_url())
    return current_app.response_class(f"{text}\n", mimetype=t.cast(DefaultJSONProvider, current_app.json).mimetype)  # as jsonify answers


def _json(value: t.Any) -> str:
    return jsonify(value).get_data(as_text=True).removesuffix("\n")


def _document(base: str) -> dict[str, t.Any]:
    routes = [Route(rule.rule, frozenset(rule.methods or ())) for rule in current_app.url_map.iter_rules()
              if rule.endpoint != "static"]
    return openapi_document(routes, base, current_app.extensions["settings"].scope_prefix)


def openapi_document(routes: t.Iterable[Route], server_url: str, scope_prefix: str = HPI_SCOPE_PREFIX) -> dict[str, t.Any]:
    paths: dict[str, dict[str, t.Any]] = {}
    for route in sorted(routes, key=lambda r: r.rule):
        path = _PATH_PARAMETER.sub(r"{\1}", route.rule)
        for method in sorted(route.methods - _IGNORED_METHODS):
            paths.setdefault(path, {})[method.lower()] = _operation(path, method)
    return {
        "openapi": "3.0.3",
        "info": {"title": "fhir-server: HPI PractitionerRole over FHIR R4", "version": VERSION,
                 "description": "FHIR R4 (4.0.1) routes answer FHIR JSON, errors as OperationOutcomes; "
                                f"{PATH_PREFIX} is the plain-JSON API, errors in its envelope."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                # SMART Backend Services: the client authenticates to the token endpoint with a signed JWT
                # (private_key_jwt), then sends the access token as a bearer token.
                "smart": {"type": "oauth2", "description": "SMART Backend Services: client_credentials with a "
                          "private_key_jwt client assertion (ES384 or RS384); send the token as Authorization: Bearer",
                          "flows": {"clientCredentials": {"tokenUrl": server_url + TOKEN_PATH,
                                                          "scopes": {scope_prefix + s: _scope_text(s) for s in sorted(ALL)}}}},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "userid": {"type": "apiKey", "in": "header", "name": "userid",
                           "description": "The person making the request (HPI); not a secret"},
            },
            "schemas": {"PlainPractitionerRole": json_schema(PractitionerRoleRequest())},
        },
    }


_SCOPE_LETTERS = {"r": "read, vread, history", "s": "search", "c": "create", "u": "update",
                  "a": "admin: every interaction, confidential records whole"}


def _scope_text(scope: str) -> str:
    rtype, letter = scope.split(".")
    return f"{rtype}: {_SCOPE_LETTERS[letter]}"


_OAUTH_PATHS = {"/.well-known/smart-configuration", TOKEN_PATH, JWKS_PATH}
_TOKEN_FORM = {"type": "object", "required": ["grant_type", "scope", "client_assertion_type", "client_assertion"],
               "properties": {"grant_type": {"enum": ["client_credentials"]}, "scope": {"type": "string"},
                              "client_assertion_type": {"enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]},
                              "client_assertion": {"type": "string", "description": "A JWT signed with a registered key"}}}


def _oauth_operation(path: str, method: str) -> dict[str, t.Any]:
    """The OAuth endpoints speak OAuth's JSON (RFC 6749 §5), not FHIR."""
    op: dict[str, t.Any] = {
        "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path).rstrip('_')}",
        "responses": {"200": {"description": "Success", "content": {"application/json": {"schema": _OBJECT}}}},
    }
    if path == TOKEN_PATH:
        op["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": _TOKEN_FORM}}}
        op["responses"]["default"] = {"description": "An OAuth error: {error, error_description}",
                                      "content": {"application/json": {"schema": _OBJECT}}}
    return op


def _operation(path: str, method: str) -> dict[str, t.Any]:
    if path in _OAUTH_PATHS:
        return _oauth_operation(path, method)
    plain = path.startswith(PATH_PREFIX)
    op: dict[str, t.Any] = {
        "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path).rstrip('_')}",
        "parameters": _parameters(path, method),
        "responses": {"200" if method != "POST" or "$" in path or path == "/" else "201": {"description": "Success"},
                      "default": {"description": "An error: the plain-JSON envelope" if plain else "An error: an OperationOutcome",
                                  "content": {"application/json" if plain else FHIR_JSON: {"schema": _OBJECT}}}},
    }
    if path not in PUBLIC_PATHS:
        op["security"] = [{"apiKey": []}] if plain else [{"smart": [], "apiKey": [], "userid": []}]
    if method in ("POST", "PUT"):
        schema = {"$ref": "#/components/schemas/PlainPractitionerRole"} if plain else _resource_schema(path)
        op["requestBody"] = {"required": True, "content": {"application/json" if plain else FHIR_JSON: {"schema": schema}}}
    return op


def _parameters(path: str, method: str) -> list[dict[str, t.Any]]:
    found = [_param(name, "path", required=True) for name in re.findall(r"{([^}]+)}", path)]
    rtype, *rest = path.strip("/").split("/")
    if method == "GET" and not rest and rtype in PARAMETERS:
        found += [_param(p.name, "query", p.documentation) for p in PARAMETERS[rtype]]
        found += _PAGING
        if INCLUDES.get(rtype):
            found.append(_param("_include", "query", "", {"enum": sorted(INCLUDES[rtype])}))
    elif method == "GET" and rest and rest[-1] == "_history":
        found += _HISTORY_PAGING
    elif rest and rest[-1] in _OPERATION_PARAMETERS:
        found += [_param(name, "query") for name in _OPERATION_PARAMETERS[rest[-1]]]
    if not path.startswith(PATH_PREFIX) and path not in PUBLIC_PATHS:
        found += _FORMAT
        if method == "PUT":
            found.append(_param("If-Match", "header", "The version updated, e.g. W/\"1\"; required (428 without)"))
        if method == "POST" and rtype in PARAMETERS and not rest:
            found.append(_param("If-None-Exist", "header", "identifier=[system|]value: a conditional create"))
        if method == "POST" and path == "/PractitionerRole":
            found.append(_param("Idempotency-Key", "header", "A replay with the same key within 24 h gets the first answer"))
        if method in ("POST", "PUT"):
            found.append(_param("Prefer", "header", "return=representation|minimal|OperationOutcome"))
    return found


def _param(name: str, where: str, description: str = "", schema: dict[str, t.Any] | None = None,
           required: bool = False) -> dict[str, t.Any]:
    return {"name": name, "in": where, "required": required, "schema": schema or {"type": "string"},
            **({"description": description} if description else {})}


_COUNT = {"type": "integer", "minimum": 0}
_PAGING = [_param("_count", "query", "Results a page (default 10, at most 50)", _COUNT),
           _param("_offset", "query", f"Results skipped (at most {MAX_OFFSET})", {**_COUNT, "maximum": MAX_OFFSET})]
_HISTORY_PAGING = [_PAGING[0], _param("_page", "query", "Where the page starts: copy it from the previous page's next link"),
                   _param("_total", "query", "accurate: count the versions (Bundle.total); otherwise no total",
                          {"enum": list(TOTALS)})]
_FORMAT = [_param("_format", "query", "The response's format: JSON only", {"enum": sorted(FORMATS)}),
           _param("_pretty", "query", "true: indented", {"enum": ["true", "false"]})]


def _resource_schema(path: str) -> dict[str, t.Any]:
    rtype = path.strip("/").split("/")[0]
    if path == "/":
        return {"type": "object", "required": ["resourceType", "type"],
                "properties": {"resourceType": {"enum": ["Bundle"]}, "type": {"enum": ["batch", "transaction"]},
                               "entry": {"type": "array", "items": _OBJECT}}}
    types = ["Parameters", rtype] if path.endswith("$validate") else [rtype]
    return {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"enum": types}}}


def json_schema(schema: Schema) -> dict[str, t.Any]:
    """A marshmallow schema's fields as JSON Schema: types, required, null, lengths, choices, patterns."""
    properties = {name: _field_schema(field) for name, field in schema.fields.items()}
    required = [name for name, field in schema.fields.items() if field.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _field_schema(field: fields.Field[t.Any]) -> dict[str, t.Any]:
    if isinstance(field, fields.List):
        out: dict[str, t.Any] = {"type": "array", "items": _field_schema(field.inner)}
        for v in field.validators:
            if isinstance(v, validate.Length) and v.max is not None:
                out["maxItems"] = v.max
    else:
        out = {"type": "string", "minLength": 1}
        for check in field.validators:
            if isinstance(check, validate.Length) and check.max is not None:
                out["maxLength"] = check.max
            elif isinstance(check, validate.OneOf):
                out["enum"] = list(check.choices)
            elif pattern := getattr(check, "pattern", None):
                out["pattern"] = pattern
    return {**out, "nullable": True} if field.allow_none else out
