"""Provenance interactions (https://hl7.org/fhir/R4/provenance.html): read and search by ``target``,
for callers with the admin scope of the target's type (see :func:`..auth.authorize`). Provenances are
written by the server with each version, never by clients."""

from __future__ import annotations

from flask import Blueprint, Response

from ..service import provenance
from . import bundles
from .incoming import args, context
from .responses import fhir_response, prefer, resource_response

bp = Blueprint("provenance", __name__)


@bp.get("/Provenance/<pid>")
def read(pid: str) -> Response:
    return resource_response(provenance.read_provenance(pid, context()))


@bp.get("/Provenance/<pid>/_history/<vid>")
def vread(pid: str, vid: str) -> Response:
    return resource_response(provenance.read_version(pid, vid, context()))


@bp.get("/Provenance")
def search() -> Response:
    query, page = provenance.search_provenance(args(), prefer("handling") == "strict", context())
    return fhir_response(bundles.searchset(page, [], bundles.paging_links(query, page.total)))
