"""Shaping FHIR responses: the media type, and the version headers of a resource."""

from __future__ import annotations

import datetime as dt
import json
import typing as t

from flask import Response, current_app, request
from werkzeug.http import http_date

FHIR_JSON = "application/fhir+json; charset=utf-8"


def fhir_response(body: dict[str, t.Any], status: int = 200, headers: t.Mapping[str, str] | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, headers=dict(headers or {}), content_type=FHIR_JSON)


def base_url() -> str:
    """The server's absolute base, for Location headers: BASE_URL if set, else from the request."""
    return current_app.extensions["settings"].base_url.rstrip("/") or request.host_url.rstrip("/")


def version_headers(resource: dict[str, t.Any]) -> dict[str, str]:
    """ETag, Last-Modified and Content-Location of a stored resource version (FHIR http.html#versioning)."""
    meta = resource["meta"]
    last_updated = dt.datetime.fromisoformat(meta["lastUpdated"].replace("Z", "+00:00"))
    return {
        "ETag": f'W/"{meta["versionId"]}"',
        "Last-Modified": http_date(last_updated),
        "Content-Location": f"{base_url()}/{resource['resourceType']}/{resource['id']}/_history/{meta['versionId']}",
    }


def created_headers(resource: dict[str, t.Any]) -> dict[str, str]:
    headers = version_headers(resource)
    return {**headers, "Location": headers["Content-Location"]}
