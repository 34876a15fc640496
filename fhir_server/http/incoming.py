"""What the views take from a request: the service context, a FHIR JSON body, the query parameters."""

from __future__ import annotations

import dataclasses

from flask import current_app, g, request

from ..outcome import Msg, RequestRejected, issue
from ..service import Context
from .responses import FHIR_VERSION, serves_version

JSON_TYPES = {"application/fhir+json", "application/json"}


def context() -> Context:
    """The service context, for the caller of this request (see .auth)."""
    shared: Context = current_app.extensions["context"]
    access = g.get("access")
    return dataclasses.replace(shared, access=access) if access else shared


def body() -> bytes:
    """The raw body of a FHIR JSON request; its size is capped by MAX_CONTENT_LENGTH (413)."""
    if request.mimetype not in JSON_TYPES:
        raise RequestRejected(issue(Msg.UNSUPPORTED_MEDIA_TYPE))
    if not serves_version(request.mimetype_params.get("fhirversion")):
        raise RequestRejected(issue(Msg.FHIR_VERSION_NOT_TAKEN, version=FHIR_VERSION))
    return request.get_data(cache=False)


def args() -> list[tuple[str, str]]:
    return list(request.args.items(multi=True))
