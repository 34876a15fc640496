"""Slow and idle clients cannot stop the service: a server with short read deadlines, many connections
trickling their heads and bodies, and fresh requests answered meanwhile."""

from __future__ import annotations

import asyncio
import json
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from pymongo import MongoClient

from fhir_server.outcome import Msg

from ..support import FHIR_JSON, Api, Server, fresh_role, start_server, stored_counts, text
from .raw import RawConnection

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3
MAX_BODY_BYTES = 65536
DATABASE = "fhir_slow"


@pytest.fixture(scope="module")
def slow_server(database, tmp_path_factory) -> t.Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("slow"), MONGODB_URI=database.uri, MONGODB_DATABASE=DATABASE,
                           WEB_CONCURRENCY="2", APP_THREADS="4", HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
                           BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT), MAX_BODY_BYTES=str(MAX_BODY_BYTES),
                           RATE_LIMIT="1000000/hour")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def slow_mongo(database) -> t.Iterator[t.Any]:
    client: MongoClient[dict[str, t.Any]] = MongoClient(database.uri)
    yield client[DATABASE]
    client.close()


def create_head(headers: dict[str, str], length: int) -> bytes:
    """A create's head with the HPI's ``headers``."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}User-Agent: slow-tests/1\r\n"
            f"Content-Type: {FHIR_JSON}\r\nContent-Length: {length}\r\n\r\n").encode()


async def trickle(port: int, head: bytes, piece: bytes, every: float, until: float) -> list[str]:
    """Open connections that send ``head``, then ``piece`` every ``every`` s, again and again until
    ``until``: the status each ended with ("closed", "reset" where there was none)."""
    endings = []
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        try:
            while loop.time() < until:
                writer.write(piece)
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(65536), every)
                except TimeoutError:
                    continue
                endings.append(data.split(b" ", 2)[1].decode() if data else "closed")
                break
        except ConnectionError:
            endings.append("reset")
        finally:
            writer.close()
    return endings


def test_fresh_requests_are_answered_while_many_clients_trickle(slow_server, slow_mongo):
    api = Api(slow_server)
    role_id = api.create(fresh_role()).json()["id"]
    port = int(slow_server.base_url.rsplit(":", 1)[1])
    before = stored_counts(slow_mongo)
    headers = slow_server.headers()

    def fresh(i: int) -> int:
        if i % 2:
            return requests.get(slow_server.base_url + "/metadata", timeout=30).status_code
        return requests.get(f"{slow_server.base_url}/PractitionerRole/{role_id}", timeout=30, headers=headers).status_code

    async def load() -> tuple[list[list[str]], list[list[str]], list[int]]:
        loop = asyncio.get_running_loop()
        until = loop.time() + HEADER_TIMEOUT + BODY_TIMEOUT + 1
        heads = [asyncio.create_task(trickle(port, b"GET /metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: y\r\n", 0.5, until))
                 for _ in range(100)]
        bodies = [asyncio.create_task(trickle(port, create_head(headers, MAX_BODY_BYTES), b" " * 100, 0.1, until))
                  for _ in range(20)]
        await asyncio.sleep(0.5)
        with ThreadPoolExecutor(4) as pool:
            statuses = []
            while loop.time() < until - 0.5:
                statuses += await asyncio.gather(*(loop.run_in_executor(pool, fresh, i) for i in range(4)))
        return await asyncio.gather(*heads), await asyncio.gather(*bodies), statuses

    head_endings, body_endings, statuses = asyncio.run(load())
    assert statuses and set(statuses) == {200}
    # Each slow head was answered 408 at its deadline; each slow body 408 at its own.
    assert {"408"} == {e for endings in head_endings for e in endings}
    assert {"408"} == {e for endings in body_endings for e in endings}
    assert stored_counts(slow_mongo) == before


def test_a_head_that_stops_gets_408_and_the_connection_closes(slow_server):
    with RawConnection(slow_server.base_url) as c:
        c.send(b"GET /metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half")
        answer = c.answer()
        assert answer.status == 408
        assert answer.headers["content-type"].startswith(FHIR_JSON)
        assert answer.json()["issue"][0]["diagnostics"] == text(Msg.HEADER_TIMEOUT, seconds=HEADER_TIMEOUT)
        assert c.closed()


def test_a_body_that_stops_gets_408_and_nothing_is_stored(slow_server, slow_mongo):
    before = stored_counts(slow_mongo)
    body = json.dumps(fresh_role()).encode()
    with RawConnection(slow_server.base_url) as c:
        c.send(create_head(slow_server.headers(), len(body)) + body[:-10])
        answer = c.answer()
        assert answer.status == 408
        assert answer.headers["content-type"].startswith(FHIR_JSON)
        assert answer.json()["issue"][0]["diagnostics"] == text(Msg.BODY_TIMEOUT, seconds=BODY_TIMEOUT)
        assert c.closed()
    assert stored_counts(slow_mongo) == before


def test_an_idle_connection_is_closed_without_an_answer(slow_server):
    with RawConnection(slow_server.base_url) as c:
        assert c.sock.recv(100) == b""  # closed after the header deadline, nothing sent


def test_a_kept_alive_connection_is_closed_quietly_when_idle_after_an_answer(slow_server):
    with RawConnection(slow_server.base_url) as c:
        assert c.request("GET", "/metadata").status == 200
        assert c.sock.recv(100) == b""
