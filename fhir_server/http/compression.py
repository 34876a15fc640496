"""gzip-compressed answers (RFC 9110 §8.4), for clients that accept gzip, above ``GZIP_MIN_BYTES``.

Done here, after the app has written the whole answer, rather than in the serving front: every answer
is whole by then (none is streamed), Werkzeug sets the new Content-Length, and a HEAD is compressed as
its GET so that its Content-Length is the GET's. The stdlib's ``gzip`` does the work; Flask-Compress
would bring brotli and zstd with it for no gain here.

An answer that could be compressed says ``Vary: Accept-Encoding``, whichever the client asked for, so
that a shared cache keeps the two apart. ETags are weak (``W/"n"``) and name the resource's version,
which a content coding does not change (RFC 9110 §8.8.1), so they stay as they are.
"""

from __future__ import annotations

import gzip

from flask import Flask, Response, current_app, request

from .rate_limits import BUNDLE_LOOKUP

__all__ = ["install"]

_LEVEL = 6  # zlib's default: most of the gain of 9 for a fraction of its time
_NO_BODY = (204, 304)


def install(app: Flask) -> None:
    app.after_request(_compress)


def _compress(response: Response) -> Response:
    if (response.direct_passthrough or response.is_streamed or response.status_code in _NO_BODY
            or response.status_code < 200 or "Content-Encoding" in response.headers or BUNDLE_LOOKUP in request.environ):
        return response
    body = response.get_data()
    if len(body) < current_app.extensions["settings"].gzip_min_bytes:
        return response
    response.vary.add("Accept-Encoding")
    if request.accept_encodings["gzip"] <= 0:  # q=0, or not named (nor "*")
        return response
    response.set_data(gzip.compress(body, compresslevel=_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    return response
