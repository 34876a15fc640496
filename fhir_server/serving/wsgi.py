"""Calling the WSGI app (PEP 3333) with a request the front has already read whole.

The body is in memory, de-chunked and within MAX_BODY_BYTES, so the app sees a plain
``CONTENT_LENGTH`` and never a ``Transfer-Encoding``; its answer is collected whole, for the event
loop to write.
"""

from __future__ import annotations

import io
import sys
import typing as t
from urllib.parse import unquote_to_bytes, urlsplit

import h11

from .answers import Answer

WsgiApp = t.Callable[[dict[str, t.Any], t.Callable[..., t.Any]], t.Iterable[bytes]]


def request_path(target: bytes) -> str:
    """The decoded path of a request target (origin form, or absolute form as a proxy sends it)."""
    raw = target if target.startswith(b"/") else urlsplit(target).path or b"/"
    return unquote_to_bytes(raw.split(b"?", 1)[0]).decode("latin-1")


def build_environ(request: h11.Request, body: bytes, *, server: tuple[str, int], client: tuple[str, int] | None,
                  url_scheme: str) -> dict[str, t.Any]:
    target = request.target
    if not target.startswith(b"/") and target != b"*":
        parts = urlsplit(target)
        target = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
    path, _, query = target.partition(b"?")
    environ: dict[str, t.Any] = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": target.decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in request.headers:  # h11 gives names lower-cased
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = text
        elif key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue  # the body is read: its length is CONTENT_LENGTH above
        elif b"_" in name:
            continue  # "x_api_key" would pose as "x-api-key" once folded: dropped, as gunicorn does
        else:
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def call_app(app: WsgiApp, environ: dict[str, t.Any]) -> Answer:
    """Run the app (in a worker thread) and collect its whole answer."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], None]:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, headers)]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the app returned without calling start_response")
    status, headers = started[0]
    code, _, reason = status.partition(" ")
    return Answer(int(code), list(headers), b"".join(chunks), reason)
