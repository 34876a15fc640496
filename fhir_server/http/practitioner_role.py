"""PractitionerRole interactions: create and read (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..outcome import Msg, RequestRejected, issue
from ..service import Context, create_practitioner_role, read_practitioner_role
from .responses import created_headers, fhir_response, version_headers

bp = Blueprint("practitioner_role", __name__)
JSON_TYPES = {"application/fhir+json", "application/json"}


def _context() -> Context:
    return current_app.extensions["context"]


def _body() -> bytes:
    """The raw body of a FHIR JSON request; its size is capped by MAX_CONTENT_LENGTH (413)."""
    if request.mimetype not in JSON_TYPES:
        raise RequestRejected(issue(Msg.UNSUPPORTED_MEDIA_TYPE))
    return request.get_data(cache=False)


@bp.post("/PractitionerRole")
def create() -> Response:
    resource = create_practitioner_role(_body(), _context())
    return fhir_response(resource, 201, created_headers(resource))


@bp.get("/PractitionerRole/<role_id>")
def read(role_id: str) -> Response:
    resource = read_practitioner_role(role_id, _context())
    return fhir_response(resource, 200, version_headers(resource))
