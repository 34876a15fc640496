"""The front around an app that fails in ways Flask never shows (it answers its own errors): what
escapes the app is answered 500 with the catalogue's EM01100, never a stack trace or an empty reply.
The front runs in this process on a loopback socket; the apps are plain WSGI callables."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import typing as t

import pytest

from fhir_server.config import Settings
from fhir_server.envelope import CODES
from fhir_server.outcome import Msg, issue
from fhir_server.serving.front import Front

from ..http.raw import RawConnection


def raises(environ: dict[str, t.Any], start_response: t.Callable[..., t.Any]) -> t.Iterable[bytes]:
    raise RuntimeError("an error no handler took")


def never_starts(environ: dict[str, t.Any], start_response: t.Callable[..., t.Any]) -> t.Iterable[bytes]:
    return [b"no status"]


def fails_while_iterating(environ: dict[str, t.Any], start_response: t.Callable[..., t.Any]) -> t.Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/fhir+json")])
    yield b"{"
    raise RuntimeError("half an answer")


def echo(environ: dict[str, t.Any], start_response: t.Callable[..., t.Any]) -> t.Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/x-echo"), ("X-Length", environ["CONTENT_LENGTH"]),
                              ("X-Chunked", str("HTTP_TRANSFER_ENCODING" in environ))])
    return [body]


@pytest.fixture
def serve() -> t.Iterator[t.Callable[[t.Any], str]]:
    """Start the front on a free loopback port around an app; stopped after the test."""
    loops: list[tuple[asyncio.AbstractEventLoop, threading.Thread, Front]] = []

    def start(app: t.Any) -> str:
        loop = asyncio.new_event_loop()
        front = Front(app, dataclasses.replace(Settings(), max_body_bytes=1000, body_buffer_bytes=2000,
                                                    header_timeout_seconds=5, body_timeout_seconds=5))
        server = loop.run_until_complete(asyncio.start_server(front.connected, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        loops.append((loop, thread, front))
        return f"http://127.0.0.1:{port}"

    yield start
    for loop, thread, front in loops:
        asyncio.run_coroutine_threadsafe(front.shutdown(0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.mark.parametrize("app", [raises, never_starts, fails_while_iterating])
def test_an_error_escaping_the_app_is_500_em01100(serve, app):
    with RawConnection(serve(app)) as c:
        answer = c.request("GET", "/PractitionerRole/R00000001-A")
    assert answer.status == 500
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = answer.json()
    assert outcome["issue"][0]["diagnostics"] == Msg.INTERNAL.value.text
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == Msg.INTERNAL.value.hpi[0]


def test_an_error_escaping_the_app_on_v1_is_the_envelope(serve):
    with RawConnection(serve(raises)) as c:
        answer = c.request("POST", "/v1/practitioner-roles", [("Content-Type", "application/json")], b"{}")
    assert answer.status == 500
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == {"code": CODES[500], "message": issue(Msg.INTERNAL).diagnostics, "fields": {}}


def test_the_app_sees_a_chunked_body_whole_with_its_length(serve):
    with RawConnection(serve(echo)) as c:
        c.send(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        answer = c.answer()
    assert answer.status == 200
    assert answer.body == b"abcde"
    assert answer.headers["x-length"] == "5"
    assert answer.headers["x-chunked"] == "False"


def test_a_body_at_the_limit_is_taken_and_one_byte_more_is_413(serve):
    base = serve(echo)
    with RawConnection(base) as c:
        assert c.request("POST", "/x", [], b"a" * 1000).body == b"a" * 1000
    with RawConnection(base) as c:
        answer = c.request("POST", "/x", [], b"a" * 1001)
    assert answer.status == 413
    assert answer.json()["issue"][0]["diagnostics"] == issue(Msg.TOO_LARGE).diagnostics


@pytest.mark.parametrize("app", [echo, raises, fails_while_iterating])
def test_each_body_gives_its_share_of_the_budget_back_whatever_the_app_does(serve, app):
    base = serve(app)  # the budget holds two bodies of the largest size
    for _ in range(5):
        with RawConnection(base) as c:
            assert c.request("POST", "/x", [], b"a" * 1000).status != 503


def test_bodies_on_a_kept_alive_connection_each_give_their_share_back(serve):
    with RawConnection(serve(echo)) as c:
        for _ in range(5):
            assert c.request("POST", "/x", [], b"a" * 1000).status == 200
