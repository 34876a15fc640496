"""Practitioner, Organization and Location interactions (https://hl7.org/fhir/R4/http.html): read,
vread (of the current version only), search, create and update, one rule per type so that the
CapabilityStatement lists each. DELETE is not routed (405): PractitionerRoles point at these records."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..service import reference_data as references
from ..service.search import parse_read
from ..service.subsets import subset
from . import bundles
from .incoming import args, body, context
from .responses import fhir_response, prefer, resource_response, written_response

bp = Blueprint("reference_data", __name__)


def create(rtype: str) -> Response:
    written = references.create_reference(rtype, body(), context(), request.headers.get("If-None-Exist"))
    return written_response(written.resource, 201 if written.changed else 200, "Created" if written.changed else "Exists")


def read(rtype: str, rid: str) -> Response:
    wanted = parse_read(rtype, args())
    return resource_response(subset(references.read_reference(rtype, rid, context()), wanted.summary, wanted.elements))


def vread(rtype: str, rid: str, vid: str) -> Response:
    return resource_response(references.read_version(rtype, rid, vid, context()))


def update(rtype: str, rid: str) -> Response:
    written = references.update_reference(rtype, rid, body(), request.headers.get("If-Match"), context())
    return written_response(written.resource, 200, "Updated" if written.changed else "Unchanged: no new version")


def search(rtype: str) -> Response:
    query, page, included = references.search_references(rtype, args(), prefer("handling") == "strict", context())
    return fhir_response(bundles.searchset(page, included, bundles.paging_links(query, page.total), query.warnings))


for _type in references.KINDS:
    bp.add_url_rule(f"/{_type}", f"create_{_type}", create, methods=["POST"], defaults={"rtype": _type})
    bp.add_url_rule(f"/{_type}", f"search_{_type}", search, methods=["GET"], defaults={"rtype": _type})
    bp.add_url_rule(f"/{_type}/<rid>", f"read_{_type}", read, methods=["GET"], defaults={"rtype": _type})
    bp.add_url_rule(f"/{_type}/<rid>/_history/<vid>", f"vread_{_type}", vread, methods=["GET"], defaults={"rtype": _type})
    bp.add_url_rule(f"/{_type}/<rid>", f"update_{_type}", update, methods=["PUT"], defaults={"rtype": _type})
