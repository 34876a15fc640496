"""Shaping FHIR responses: content negotiation, ``_pretty``, ``Prefer``, and version headers.

JSON is the only format (SPEC.md §3.0: "Only Json is supported by this implementation"). A request
that will take only XML (by ``Accept`` or ``_format``) gets 406 before anything else happens; the
response is ``application/fhir+json`` unless the client asked for ``application/json`` alone.

Media types may carry ``charset`` (only utf-8 is served) and ``fhirVersion`` (R4 http.html#version-parameter):
a type that names another FHIR version than 4.0 does not match, and a request that will take only
those gets 406 saying which version is served. An answer to a request that named ``fhirVersion``
names it too (``application/fhir+json; fhirVersion=4.0; charset=utf-8``), so that the client sees
its version was heeded; others keep the plain type.
"""

from __future__ import annotations

import functools
import typing as t

from flask import Response, g, request
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import http_date, parse_accept_header, parse_options_header

from ..exact_json import dumps
from ..instants import last_updated
from ..outcome import Msg, RequestRejected, issue, operation_outcome
from .hosts import public_base_url

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
# _format values FHIR defines for JSON (http.html#mime-type), and the media types they stand for.
FORMATS = {"json": FHIR_JSON, FHIR_JSON: FHIR_JSON, JSON: JSON, "text/json": JSON}
#: Preferences of ``Prefer`` the server acts on, and their values (R4 http.html#return, search.html#errors).
HONOURED = {"return": ("minimal", "representation", "OperationOutcome"), "handling": ("strict", "lenient")}
# Kept with the request, not in ``g``, which a Bundle's entries share with the Bundle.
_APPLIED = "fhir_server.preference_applied"
#: The FHIR version served, as the ``fhirVersion`` parameter names it (R4 http.html#version-parameter).
FHIR_VERSION = "4.0"


def serves_version(version: str | None) -> bool:
    """Whether a ``fhirVersion`` parameter names the version served: 4.0, or a 4.0.x release."""
    return version is None or version == FHIR_VERSION or version.startswith(FHIR_VERSION + ".")


def _usable(params: t.Mapping[str, str]) -> bool:
    return params.get("charset", "utf-8").lower() == "utf-8" and serves_version(params.get("fhirversion"))


def negotiate() -> None:
    """Choose the response media type, or refuse with 406: runs before every request."""
    g.fhir_version = False
    wanted = request.args.get("_format")
    if wanted is not None:
        media_type, params = parse_options_header(wanted)
        g.media_type = FORMATS.get(media_type) if _usable(params) else None
        g.fhir_version = "fhirversion" in params
        other_version = not serves_version(params.get("fhirversion"))
    else:
        g.media_type, g.fhir_version, other_version = _accepted(request.headers.get("Accept"))
    if g.media_type is None:
        g.media_type, g.fhir_version = FHIR_JSON, False  # for the 406 itself
        raise RequestRejected(issue(Msg.FHIR_VERSION_NOT_SERVED, version=FHIR_VERSION) if other_version else issue(Msg.NOT_ACCEPTABLE))


@functools.lru_cache(maxsize=256)  # clients send a few Accept headers again and again (bounded: any may come)
def _accepted(accept: str | None) -> tuple[str | None, bool, bool]:
    """The media type an ``Accept`` header chooses (None: none served), whether the chosen names
    ``fhirVersion``, and whether it names another FHIR version."""
    accepted = parse_accept_header(accept, MIMEAccept)
    if not accepted:  # no Accept header: anything will do
        return FHIR_JSON, False, False
    # Werkzeug matches a type with parameters only to the same parameters: they are read here, and
    # the types left bare for the match, with their q-values.
    served: list[tuple[str, float]] = []
    fhir_version = other_version = False
    for value, quality in accepted:
        media_type, params = parse_options_header(value)
        if _usable(params):
            served.append((media_type, quality))
            fhir_version = fhir_version or "fhirversion" in params
        other_version = other_version or not serves_version(params.get("fhirversion"))
    return MIMEAccept(served).best_match([FHIR_JSON, JSON]), fhir_version, other_version


def content_type() -> str:
    """The Content-Type of FHIR answers to this request (see :func:`negotiate`)."""
    media_type = g.get("media_type") or FHIR_JSON
    version = f"; fhirVersion={FHIR_VERSION}" if g.get("fhir_version") and media_type == FHIR_JSON else ""
    return f"{media_type}{version}; charset=utf-8"


def fhir_response(body: dict[str, t.Any] | None, status: int = 200, headers: t.Mapping[str, str] | None = None) -> Response:
    text = "" if body is None else fhir_json(body, pretty=pretty())
    return fhir_text_response(text, status, headers)


def pretty() -> bool:
    """Whether the client asked for indented JSON (``_pretty=true``)."""
    return request.args.get("_pretty") == "true"


def fhir_json(body: t.Any, *, pretty: bool) -> str:
    # Decimals are written with the digits they were sent with (exact_json).
    return dumps(body, ensure_ascii=False, indent=2 if pretty else None, separators=(", ", ": ") if pretty else (",", ":"))


def fhir_text_response(text: str, status: int = 200, headers: t.Mapping[str, str] | None = None) -> Response:
    """A FHIR answer already written as JSON text, in the negotiated media type."""
    return Response(text, status=status, headers=dict(headers or {}), content_type=content_type())


def base_url() -> str:
    """The server's absolute base, for Location headers and every other URL it writes (http/hosts.py)."""
    return public_base_url()


def prefer(name: str) -> str | None:
    """A preference of the Prefer header (RFC 7240), e.g. ``prefer("return")`` → ``"minimal"``."""
    # Preferences are separated by "," and may carry ";" parameters; each is read on its own here.
    for part in request.headers.get("Prefer", "").replace(";", ",").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            value = value.strip().strip('"')
            if value in HONOURED.get(name, ()):
                # Read by the code that acts on it: the answer says it was (RFC 7240 §3).
                request.environ.setdefault(_APPLIED, {})[name] = value
            return value
    return None


def preference_applied(response: Response) -> Response:
    """``Preference-Applied`` with the preferences of ``Prefer`` this request acted on, if any."""
    applied = request.environ.get(_APPLIED)
    if applied:
        response.headers["Preference-Applied"] = ", ".join(f"{k}={v}" for k, v in applied.items())
    return response


def version_headers(resource: dict[str, t.Any]) -> dict[str, str]:
    """ETag, Last-Modified and Content-Location of a stored resource version (FHIR http.html#versioning)."""
    meta = resource["meta"]
    return {
        "ETag": f'W/"{meta["versionId"]}"',
        "Last-Modified": http_date(last_updated(resource)),
        "Content-Location": f"{base_url()}/{resource['resourceType']}/{resource['id']}/_history/{meta['versionId']}",
    }


def resource_response(resource: dict[str, t.Any], status: int = 200) -> Response:
    """A read: the resource and its version headers, or 304 Not Modified (no body, the same headers)
    if the client has this version: its If-None-Match names it (``W/"n"``, ``"n"`` or ``n``), or,
    without If-None-Match, its If-Modified-Since is no earlier than the version's Last-Modified
    (RFC 9110 §13.1.3: If-None-Match, which is exact, wins)."""
    headers = version_headers(resource)
    if _not_modified(resource):
        return fhir_response(None, 304, headers)
    return fhir_response(resource, status, headers)


def _not_modified(resource: dict[str, t.Any]) -> bool:
    if "If-None-Match" in request.headers:
        seen = {tag.strip().removeprefix("W/").strip('"') for tag in request.headers["If-None-Match"].split(",")}
        return resource["meta"]["versionId"] in seen or "*" in seen
    since = request.if_modified_since  # None when absent or not an HTTP date: then the header is ignored
    # Last-Modified is sent in whole seconds, so it is compared in whole seconds.
    return since is not None and last_updated(resource).replace(microsecond=0) <= since


def written_response(resource: dict[str, t.Any], status: int, what: str) -> Response:
    """A create or update, shaped by ``Prefer: return=minimal|representation|OperationOutcome``
    (representation by default). A 201 also carries ``Location``."""
    headers = version_headers(resource)
    if status == 201:
        headers["Location"] = headers["Content-Location"]
    wanted = prefer("return")
    if wanted == "minimal":
        return fhir_response(None, status, headers)
    if wanted == "OperationOutcome":
        return fhir_response(operation_outcome([issue(Msg.OPERATION_OK, what=what)]), status, headers)
    return fhir_response(resource, status, headers)
