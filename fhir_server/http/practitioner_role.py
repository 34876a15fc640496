"""PractitionerRole interactions (https://hl7.org/fhir/R4/http.html): create, read, vread, update,
search, history and ``$validate``. DELETE answers 405: HPI roles are ended, never deleted."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..outcome import Msg, issue, operation_outcome
from ..service import practitioner_role as roles
from ..service.search import parse_read
from ..service.subsets import subset
from . import bundles
from .idempotency import replayable, request_tag
from .incoming import args, body, context
from .responses import fhir_response, prefer, resource_response, written_response

bp = Blueprint("practitioner_role", __name__)


@bp.post("/PractitionerRole")
@replayable
def create() -> Response:
    written = roles.create_practitioner_role(body(), context(), request.headers.get("If-None-Exist"), *request_tag())
    return written_response(written.resource, 201 if written.changed else 200, "Created" if written.changed else "Exists")


@bp.get("/PractitionerRole/<role_id>")
def read(role_id: str) -> Response:
    wanted = parse_read("PractitionerRole", args())
    return resource_response(subset(roles.read_practitioner_role(role_id, context()), wanted.summary, wanted.elements))


@bp.get("/PractitionerRole/<role_id>/_history/<vid>")
def vread(role_id: str, vid: str) -> Response:
    return resource_response(roles.read_version(role_id, vid, context()))


@bp.put("/PractitionerRole/<role_id>")
def update(role_id: str) -> Response:
    written = roles.update_practitioner_role(role_id, body(), request.headers.get("If-Match"), context())
    return written_response(written.resource, 200, "Updated" if written.changed else "Unchanged: no new version")


@bp.delete("/PractitionerRole/<role_id>")
def delete(role_id: str) -> Response:
    return fhir_response(operation_outcome([issue(Msg.NOT_DELETABLE)]), 405, {"Allow": "GET, PUT"})


@bp.get("/PractitionerRole")
def search() -> Response:
    query, page, included = roles.search_practitioner_roles(args(), prefer("handling") == "strict", context())
    return fhir_response(bundles.searchset(page, included, bundles.paging_links(query, page.total), query.warnings))


@bp.get("/PractitionerRole/_history")
def type_history() -> Response:
    query, page = roles.role_history(None, args(), context())
    return fhir_response(bundles.history(page, bundles.history_links(query, page)))


@bp.get("/PractitionerRole/<role_id>/_history")
def instance_history(role_id: str) -> Response:
    query, page = roles.role_history(role_id, args(), context())
    return fhir_response(bundles.history(page, bundles.history_links(query, page)))


@bp.post("/PractitionerRole/$validate")
@bp.post("/PractitionerRole/<role_id>/$validate")
def validate(role_id: str | None = None) -> Response:
    """200 with the problems found, or one informational issue if there are none. The body is the
    resource, or a Parameters resource carrying it as ``resource``; ``mode`` is create (default) or
    update (with an id)."""
    issues = roles.validate_practitioner_role(body(), context(), role_id, request.args.get("mode"))
    return fhir_response(operation_outcome(issues or [issue(Msg.OPERATION_OK, what="No problems found")]))
