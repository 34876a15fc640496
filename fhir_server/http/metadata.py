"""``GET /metadata``: the CapabilityStatement, open to all as FHIR expects."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..capabilities import Route, capability_statement
from .incoming import context
from .responses import base_url, fhir_response

bp = Blueprint("metadata", __name__)


@bp.get("/metadata")
def capability_statement_view() -> Response:
    routes = [Route(rule.rule, frozenset(rule.methods or ())) for rule in current_app.url_map.iter_rules()]
    return fhir_response(capability_statement(routes, base_url(), current_app.extensions["started"], context().definitions))
