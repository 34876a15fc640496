"""``GET /metadata``: the CapabilityStatement, open to all as FHIR expects."""

from __future__ import annotations

import functools
import typing as t

from flask import Blueprint, Response, current_app

from ..capabilities import Route, capability_statement
from .documents import document_text
from .incoming import context
from .oauth import TOKEN_PATH
from .responses import base_url, fhir_json, fhir_text_response, pretty

bp = Blueprint("metadata", __name__)


@bp.get("/metadata")
def capability_statement_view() -> Response:
    indented = pretty()
    dumps = functools.partial(fhir_json, pretty=indented)
    return fhir_text_response(document_text(("metadata", indented), _statement, dumps, base_url()))


def _statement(base: str) -> dict[str, t.Any]:
    routes = [Route(rule.rule, frozenset(rule.methods or ())) for rule in current_app.url_map.iter_rules()]
    return capability_statement(routes, base, current_app.extensions["started"], context().definitions,
                                token_url=base + TOKEN_PATH, scope_prefix=current_app.extensions["settings"].scope_prefix)
