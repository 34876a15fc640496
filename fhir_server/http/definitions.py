"""StructureDefinition, ValueSet and CodeSystem: read and search, ``ValueSet/$expand`` and
``$validate-code`` (https://hl7.org/fhir/R4/terminology-service.html). Read-only: they are the
files of ``profiles/``."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..service import definitions
from . import bundles
from .incoming import args, context
from .responses import fhir_response, prefer

bp = Blueprint("definitions", __name__)


def read(kind: str, rid: str) -> Response:
    return fhir_response(definitions.read_definition(kind, rid, context()))


def search(kind: str) -> Response:
    query, page = definitions.search_definitions(kind, args(), prefer("handling") == "strict", context())
    return fhir_response(bundles.searchset(page, [], bundles.paging_links(query, page.total)))


def validate_code(kind: str, rid: str | None = None) -> Response:
    return fhir_response(definitions.validate_code(kind, request.args, rid, context()))


@bp.get("/ValueSet/$expand")
@bp.get("/ValueSet/<rid>/$expand")
def expand(rid: str | None = None) -> Response:
    return fhir_response(definitions.expand(request.args, rid, context()))


for _kind in definitions.KINDS:
    bp.add_url_rule(f"/{_kind}", f"search_{_kind}", search, methods=["GET"], defaults={"kind": _kind})
    bp.add_url_rule(f"/{_kind}/<rid>", f"read_{_kind}", read, methods=["GET"], defaults={"kind": _kind})
for _kind in ("ValueSet", "CodeSystem"):
    bp.add_url_rule(f"/{_kind}/$validate-code", f"validate_code_{_kind}", validate_code, methods=["GET"], defaults={"kind": _kind})
    bp.add_url_rule(f"/{_kind}/<rid>/$validate-code", f"validate_code_{_kind}_instance", validate_code, methods=["GET"],
                    defaults={"kind": _kind})
