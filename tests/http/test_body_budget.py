"""The body budget: request bodies held by one worker together stay within BODY_BUFFER_BYTES. Slow
bodies that fill it make further bodies 503 (Retry-After, connection closed) while requests without a
body are answered; once they end (408 or closed by their client) bodies are taken again."""

from __future__ import annotations

import contextlib
import typing as t

import pytest

from fhir_server.outcome import Msg

from ..support import FHIR_JSON, Api, Server, fresh_role, start_server
from .raw import RawConnection

MAX_BODY_BYTES = 65536
HELD = 4  # bodies of MAX_BODY_BYTES the budget holds
BODY_TIMEOUT = 3


@pytest.fixture(scope="module")
def budget_server(database, tmp_path_factory) -> t.Iterator[Server]:
    # One worker: the budget is a worker's, so the bodies below all count against the same one.
    running = start_server(tmp_path_factory.mktemp("budget"), MONGODB_URI=database.uri, MONGODB_DATABASE="fhir_budget",
                           WEB_CONCURRENCY="1", BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT), MAX_BODY_BYTES=str(MAX_BODY_BYTES),
                           BODY_BUFFER_BYTES=str(HELD * MAX_BODY_BYTES), RATE_LIMIT="1000000/hour")
    yield running
    running.stop()


def hold_body(server: Server) -> RawConnection:
    """A connection whose request takes MAX_BODY_BYTES of the budget and then sends its body slowly: the
    ``100 Continue`` says the server has taken its share."""
    c = RawConnection(server.base_url)
    c.send((f"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FHIR_JSON}\r\n"
            f"Content-Length: {MAX_BODY_BYTES}\r\nExpect: 100-continue\r\n\r\n").encode())
    assert c.sock.recv(1000).startswith(b"HTTP/1.1 100 ")
    c.send(b" " * 1000)
    return c


def assert_refused_for_room(c: RawConnection) -> None:
    answer = c.answer()
    assert answer.status == 503
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["issue"][0]["diagnostics"] == Msg.BODY_BUFFER_FULL.value.text
    assert c.closed()


def test_slow_bodies_that_fill_the_budget_turn_further_bodies_away_until_they_end(budget_server):
    api = Api(budget_server)
    role_id = api.create(fresh_role()).json()["id"]
    with contextlib.ExitStack() as stack:
        slow = [stack.enter_context(hold_body(budget_server)) for _ in range(HELD)]

        # A body with Content-Length is refused before it is sent; a chunked one at its first chunk.
        with RawConnection(budget_server.base_url) as c:
            c.send(b"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
            assert_refused_for_room(c)
        with RawConnection(budget_server.base_url) as c:
            c.send(b"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
            assert_refused_for_room(c)
        with RawConnection(budget_server.base_url) as c:
            c.send(b"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            assert c.sock.recv(1000).startswith(b"HTTP/1.1 503 ")  # not asked to send its body first

        # Requests without a body are answered meanwhile.
        assert api.get("/metadata").status_code == 200
        assert api.get(f"/PractitionerRole/{role_id}").status_code == 200

        # The slow bodies end: all but one closed by their clients, the last at its deadline (408).
        for c in slow[1:]:
            c.sock.close()
        answer = slow[0].answer()
        assert answer.status == 408
        assert answer.json()["issue"][0]["diagnostics"] == Msg.BODY_TIMEOUT.value.text.format(seconds=BODY_TIMEOUT)

    # Bodies are taken again: a create, then the whole budget again (so the closed ones gave theirs back).
    assert api.create(fresh_role()).status_code == 201
    with contextlib.ExitStack() as stack:
        for _ in range(HELD):
            stack.enter_context(hold_body(budget_server))
        with RawConnection(budget_server.base_url) as c:
            c.send(b"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
            assert_refused_for_room(c)


def test_refused_and_answered_bodies_give_their_share_back(budget_server):
    """Bodies refused for size, for their framing, or answered by the app each hold the budget only
    while in hand: many more of them than it holds are all served."""
    api = Api(budget_server)
    for _ in range(3 * HELD):
        assert api.post("/PractitionerRole", data=b" " * (MAX_BODY_BYTES + 1)).status_code == 413
        assert api.post("/PractitionerRole", data=b"{" + b" " * (MAX_BODY_BYTES - 2) + b"}").status_code in (400, 422)
        with RawConnection(budget_server.base_url) as c:
            c.send(b"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"8000\r\n" + b" " * 0x8000 + b"\r\n" + b"8001\r\n" + b" " * 0x8001 + b"\r\n0\r\n\r\n")
            assert c.answer().status == 413
    assert api.create(fresh_role()).status_code == 201
