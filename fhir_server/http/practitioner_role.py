"""PractitionerRole interactions (https://hl7.org/fhir/R4/http.html): create, read, vread, update,
search, history and ``$validate``. DELETE answers 405: HPI roles are ended, never deleted."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..outcome import Msg, RequestRejected, issue, operation_outcome
from ..service import Context
from ..service import practitioner_role as roles
from ..service.search import Query
from ..store.queries import Page
from . import bundles
from .responses import fhir_response, prefer, resource_response, written_response

bp = Blueprint("practitioner_role", __name__)
JSON_TYPES = {"application/fhir+json", "application/json"}


def _context() -> Context:
    return current_app.extensions["context"]


def body() -> bytes:
    """The raw body of a FHIR JSON request; its size is capped by MAX_CONTENT_LENGTH (413)."""
    if request.mimetype not in JSON_TYPES:
        raise RequestRejected(issue(Msg.UNSUPPORTED_MEDIA_TYPE))
    return request.get_data(cache=False)


def _args() -> list[tuple[str, str]]:
    return list(request.args.items(multi=True))


def _paged(query: Query, page: Page) -> list[dict[str, str]]:
    return bundles.paging_links(request.path, query.used, query.offset, query.count, page.total)


@bp.post("/PractitionerRole")
def create() -> Response:
    written = roles.create_practitioner_role(body(), _context(), request.headers.get("If-None-Exist"))
    return written_response(written.resource, 201 if written.changed else 200, "Created" if written.changed else "Exists")


@bp.get("/PractitionerRole/<role_id>")
def read(role_id: str) -> Response:
    return resource_response(roles.read_practitioner_role(role_id, _context()))


@bp.get("/PractitionerRole/<role_id>/_history/<vid>")
def vread(role_id: str, vid: str) -> Response:
    return resource_response(roles.read_version(role_id, vid, _context()))


@bp.put("/PractitionerRole/<role_id>")
def update(role_id: str) -> Response:
    written = roles.update_practitioner_role(role_id, body(), request.headers.get("If-Match"), _context())
    return written_response(written.resource, 200, "Updated" if written.changed else "Unchanged: no new version")


@bp.delete("/PractitionerRole/<role_id>")
def delete(role_id: str) -> Response:
    return fhir_response(operation_outcome([issue(Msg.NOT_DELETABLE)]), 405, {"Allow": "GET, PUT"})


@bp.get("/PractitionerRole")
def search() -> Response:
    query, page, included = roles.search_practitioner_roles(_args(), prefer("handling") == "strict", _context())
    return fhir_response(bundles.searchset(page, included, _paged(query, page)))


@bp.get("/PractitionerRole/_history")
def type_history() -> Response:
    query, page = roles.role_history(None, _args(), _context())
    return fhir_response(bundles.history(page, _paged(query, page)))


@bp.get("/PractitionerRole/<role_id>/_history")
def instance_history(role_id: str) -> Response:
    query, page = roles.role_history(role_id, _args(), _context())
    return fhir_response(bundles.history(page, _paged(query, page)))


@bp.post("/PractitionerRole/$validate")
@bp.post("/PractitionerRole/<role_id>/$validate")
def validate(role_id: str | None = None) -> Response:
    """200 with the problems found, or one informational issue if there are none. The body is the
    resource, or a Parameters resource carrying it as ``resource``; ``mode`` is create (default) or
    update (with an id)."""
    issues = roles.validate_practitioner_role(body(), _context(), role_id, request.args.get("mode"))
    return fhir_response(operation_outcome(issues or [issue(Msg.OPERATION_OK, what="No problems found")]))
