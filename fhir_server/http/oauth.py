"""The OAuth2 side of SMART Backend Services, open to all: discovery, the token endpoint and the
server's public keys. Errors of the token endpoint are OAuth's (RFC 6749 §5.2), not OperationOutcomes:
OAuth clients read them."""

from __future__ import annotations

import json
import typing as t

from flask import Blueprint, Response, current_app, request

from ..auth import OAuthError
from ..auth.scopes import ALL
from ..auth.tokens import CLIENT_ALGORITHMS
from .responses import base_url

bp = Blueprint("oauth", __name__)
TOKEN_PATH = "/auth/token"
JWKS_PATH = "/auth/jwks"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# A token request (a client assertion and every scope) takes 2 to 4 KB. Anyone may post here, and
# parsing a form of MAX_BODY_BYTES in tiny fields costs a worker about half a second: a larger body
# is refused unread.
MAX_TOKEN_REQUEST_BYTES = 16 * 1024


def token_url() -> str:
    return base_url() + TOKEN_PATH


def _json(body: dict[str, t.Any], status: int = 200, headers: t.Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=dict(headers or {}), content_type="application/json")


@bp.get("/.well-known/smart-configuration")
def smart_configuration() -> Response:
    prefix = current_app.extensions["settings"].scope_prefix
    return _json({
        "token_endpoint": token_url(),
        "jwks_uri": base_url() + JWKS_PATH,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_ALGORITHMS,
        "scopes_supported": [prefix + s for s in sorted(ALL)],
        "capabilities": ["client-confidential-asymmetric"],
    })


@bp.post(TOKEN_PATH)
def token() -> Response:
    if request.mimetype != "application/x-www-form-urlencoded":
        error = OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    elif (request.content_length or 0) > MAX_TOKEN_REQUEST_BYTES:
        error = OAuthError("invalid_request", f"a token request is at most {MAX_TOKEN_REQUEST_BYTES} bytes")
    else:
        try:
            return _json(current_app.extensions["tokens"].grant(request.form, token_url()), headers=_NO_STORE)
        except OAuthError as e:
            error = e
    headers = {**_NO_STORE, **({"WWW-Authenticate": 'Bearer realm="fhir-server"'} if error.status == 401 else {})}
    return _json({"error": error.error, "error_description": error.description}, error.status, headers)


@bp.get(JWKS_PATH)
def jwks() -> Response:
    return _json(current_app.extensions["tokens"].public_jwks())
