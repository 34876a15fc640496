"""What the serving front answers before the app sees a request: broken HTTP, oversized heads and
bodies however they are framed, keep-alive. Every refusal is an OperationOutcome (the envelope under
/v1/), never HTML or text."""

from __future__ import annotations

import json

import pytest

from fhir_server.outcome import Msg
from fhir_server.serving.front import MAX_BODY_CHUNKS, MAX_HEAD_BYTES, MAX_HEADER_FIELDS

from ..support import FHIR_JSON, fresh_role, stored_counts, text
from .raw import RawAnswer, RawConnection

MAX_BODY_BYTES = 65536  # the session server's (conftest.py)


def assert_outcome(answer: RawAnswer, status: int, diagnostics: str) -> None:
    assert answer.status == status
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"] == diagnostics
    assert answer.headers["x-request-id"].startswith("req_")


def assert_envelope(answer: RawAnswer, status: int, message: str) -> None:
    assert answer.status == status
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["error"]["message"] == message
    assert body["meta"]["status"] == status
    assert body["meta"]["requestId"] == answer.headers["x-request-id"]


def chunked(body: bytes, size: int = 4096) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


def auth_headers(api) -> list[tuple[str, str]]:
    """The HPI's headers (SPEC.md §6) of the api session, and a User-Agent."""
    return [(name, api.session.headers[name]) for name in ("Authorization", "x-api-key", "userid")] + [("User-Agent", "raw-tests/1")]


def auth(api) -> list[str]:
    return [f"{name}: {value}" for name, value in auth_headers(api)]


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"GET /metadata\r\n\r\n", b"GET /metadata HTTP/1.1\r\n\r\n",
                                  b"GET /met adata HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_a_malformed_request_line_or_head_is_400_outcome(server, line):
    with RawConnection(server.base_url) as c:
        c.send(line)
        answer = c.answer()
        assert answer.status == 400
        assert answer.headers["content-type"].startswith(FHIR_JSON)
        assert answer.json()["issue"][0]["diagnostics"].startswith(text(Msg.BAD_HTTP, reason=""))
        assert c.closed()


def test_an_http_version_other_than_1_x_is_505_outcome(server):
    with RawConnection(server.base_url) as c:
        c.send(b"GET /metadata HTTP/2.0\r\nHost: x\r\n\r\n")
        assert_outcome(c.answer(), 505, text(Msg.HTTP_VERSION, version="2.0"))


@pytest.mark.parametrize("lines", [[f"X-Big: {'y' * (MAX_HEAD_BYTES + 10)}"],
                                   [f"X-Many-{i}: y" for i in range(MAX_HEADER_FIELDS + 1)]])
def test_an_oversized_head_is_431_outcome(server, lines):
    with RawConnection(server.base_url) as c:
        c.send(head("GET", "/metadata", *lines))
        assert_outcome(c.answer(), 431, text(Msg.HEADERS_TOO_LARGE, limit=MAX_HEAD_BYTES, fields=MAX_HEADER_FIELDS))


def test_a_head_growing_past_the_limit_slowly_is_431_outcome(server):
    with RawConnection(server.base_url) as c:
        c.send(b"GET /metadata HTTP/1.1\r\nHost: x\r\n")
        for _ in range(MAX_HEAD_BYTES // 1000 + 2):
            c.send(b"X-Part: " + b"y" * 1000 + b"\r\n")
        assert_outcome(c.answer(), 431, text(Msg.HEADERS_TOO_LARGE, limit=MAX_HEAD_BYTES, fields=MAX_HEADER_FIELDS))


def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(server, api, mongo):
    before = stored_counts(mongo)
    role = fresh_role(text={"status": "generated", "div": "<div>" + "x" * MAX_BODY_BYTES + "</div>"})
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}", "Transfer-Encoding: chunked"))
        c.send(chunked(json.dumps(role).encode()))
        assert_outcome(c.answer(), 413, text(Msg.TOO_LARGE))
    assert stored_counts(mongo) == before


def test_a_chunked_body_exactly_over_the_limit_by_one_byte_is_413(server, api, mongo):
    before = stored_counts(mongo)
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}", "Transfer-Encoding: chunked"))
        c.send(chunked(b" " * (MAX_BODY_BYTES + 1)))
        assert_outcome(c.answer(), 413, text(Msg.TOO_LARGE))
    assert stored_counts(mongo) == before


def test_a_chunked_body_within_the_limit_is_created(server, api, mongo):
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}", "Transfer-Encoding: chunked"))
        c.send(chunked(json.dumps(fresh_role()).encode(), size=100))
        answer = c.answer()
    assert answer.status == 201
    assert "/PractitionerRole/" in answer.headers["location"]
    assert answer.json()["id"] in answer.headers["location"]


def test_a_content_length_over_the_limit_is_413_before_the_body_is_sent(server, api):
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}",
                    f"Content-Length: {MAX_BODY_BYTES + 1}", "Expect: 100-continue"))
        assert_outcome(c.answer(), 413, text(Msg.TOO_LARGE))


def test_the_plain_api_gets_its_envelope_for_a_body_over_the_limit(server, api):
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/v1/practitioner-roles", *auth(api), "Content-Type: application/json", "Transfer-Encoding: chunked"))
        c.send(chunked(b" " * (MAX_BODY_BYTES + 1)))
        assert_envelope(c.answer(), 413, text(Msg.TOO_LARGE))


def test_a_chunked_body_in_too_many_chunks_is_413_and_nothing_is_stored(server, api, mongo):
    before = stored_counts(mongo)
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}", "Transfer-Encoding: chunked"))
        c.send(chunked(b" " * (MAX_BODY_CHUNKS + 1), size=1))  # well under MAX_BODY_BYTES
        assert_outcome(c.answer(), 413, text(Msg.TOO_MANY_CHUNKS, limit=MAX_BODY_CHUNKS))
    assert stored_counts(mongo) == before


def test_a_body_framed_both_ways_is_400_and_the_connection_closes(server, api):
    """Transfer-Encoding with Content-Length (request smuggling, RFC 9112 §6.3): refused, and what
    follows on the connection is not read as a request of its own."""
    smuggled = head("GET", "/metadata")
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}", "Transfer-Encoding: chunked",
                    "Content-Length: 5") + b"0\r\n\r\n" + smuggled)
        answer = c.answer()
        assert answer.status == 400
        assert answer.json()["issue"][0]["diagnostics"].startswith(text(Msg.BAD_HTTP, reason=""))
        assert answer.headers["connection"] == "close"
        assert c.closed()


@pytest.mark.parametrize("framing", [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"])
def test_broken_chunked_framing_is_400_outcome(server, api, mongo, framing):
    before = stored_counts(mongo)
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}", "Transfer-Encoding: chunked"))
        c.send(framing)
        answer = c.answer()
    assert answer.status == 400
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    assert answer.json()["issue"][0]["diagnostics"].startswith(text(Msg.BAD_HTTP, reason=""))
    assert stored_counts(mongo) == before


def test_a_transfer_coding_other_than_chunked_is_501_outcome(server, api):
    with RawConnection(server.base_url) as c:
        c.send(head("POST", "/PractitionerRole", *auth(api), f"Content-Type: {FHIR_JSON}", "Transfer-Encoding: gzip"))
        answer = c.answer()
    assert answer.status == 501
    assert answer.json()["issue"][0]["diagnostics"].startswith(text(Msg.BAD_HTTP, reason=""))


def test_keep_alive_answers_several_requests_on_one_connection(server, api):
    created = api.create(fresh_role()).json()
    with RawConnection(server.base_url) as c:
        first = c.request("GET", "/metadata")
        second = c.request("GET", f"/PractitionerRole/{created['id']}", auth_headers(api))
        third = c.request("GET", "/openapi.json")
    assert [first.status, second.status, third.status] == [200, 200, 200]
    assert second.json()["id"] == created["id"]
    assert second.headers["etag"] == 'W/"1"'


def test_pipelined_requests_are_answered_in_order(server):
    with RawConnection(server.base_url) as c:
        c.send(head("GET", "/metadata") + head("GET", "/PractitionerRole/R00000000-X"))
        first = c.answer()
        c.conn.start_next_cycle()
        second = c.answer()
    assert first.status == 200 and first.json()["resourceType"] == "CapabilityStatement"
    assert_outcome(second, 403, text(Msg.FORBIDDEN))  # without a key: answered by the app, in order


def test_a_head_request_has_the_get_headers_and_no_body(server):
    with RawConnection(server.base_url) as c:
        answer = c.request("HEAD", "/metadata")
    assert answer.status == 200
    assert answer.body == b""
    assert int(answer.headers["content-length"]) > 0
