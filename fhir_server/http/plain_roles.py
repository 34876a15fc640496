"""``/v1/practitioner-roles``: the plain-JSON API of reference/clinikehr/API.md, answered in its envelope."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..outcome import Msg, RequestRejected, issue
from ..service import plain_role
from ..service.plain_role import PATH_PREFIX
from .envelope import data_response
from .idempotency import replayable, request_tag
from .incoming import context
from .responses import base_url

bp = Blueprint("plain_roles", __name__, url_prefix=PATH_PREFIX.rstrip("/"))


@bp.post("/practitioner-roles")
@replayable
def create() -> Response:
    if request.mimetype != "application/json":
        raise RequestRejected(issue(Msg.PLAIN_MEDIA_TYPE))
    written = plain_role.create_plain_role(request.get_data(cache=False), context(), *request_tag())
    resource = written.resource
    location = f"{base_url()}{PATH_PREFIX}practitioner-roles/{resource['id']}"
    return data_response(plain_role.to_plain(resource, resource["meta"]["lastUpdated"]), 201 if written.changed else 200,
                         {"Location": location})


@bp.get("/practitioner-roles/<role_id>")
def read(role_id: str) -> Response:
    return data_response(plain_role.to_plain(*plain_role.read_plain_role(role_id, context())))
