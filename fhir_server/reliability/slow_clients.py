"""Slow and idle clients against fresh requests.

200 connections trickle a request head, one header line every 5 s; 50 more send a MAX_BODY_BYTES
create body at 1 KB/s; each starts again when the server closes it. Meanwhile ``/metadata`` and an
authenticated read, each on a fresh connection, are timed.

Promised: every fresh request is answered 200, within 1 s at p99; every slow head ends with a 408
by HEADER_TIMEOUT_SECONDS, every slow body with a 408 by BODY_TIMEOUT_SECONDS (a few seconds of
slack for a loaded machine); nothing of a slow body is stored.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ..config import Settings
from .client import FHIR_JSON, USER_AGENT, USERID, Answer
from .harness import Harness
from .report import Result, statuses

HEAD_CLIENTS = 200
HEAD_LINE_SECONDS = 5.0
BODY_CLIENTS = 50
BODY_BYTES_PER_SECOND = 1024
SLACK_SECONDS = 3.0  # a deadline is kept if the answer comes within this much after it
P99_SECONDS = 1.0


async def _ending(reader: asyncio.StreamReader, seconds: float) -> str | None:
    """What the server sent within ``seconds``: its status, "closed", or None if nothing yet."""
    try:
        data = await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return None
    parts = data.split(b" ", 2)
    return parts[1].decode() if data and len(parts) > 1 else "closed"


async def _trickle(port: int, head: bytes, piece: bytes, every: float, until: float, endings: list[tuple[str, float]]) -> None:
    """Send ``head``, then ``piece`` every ``every`` s, until the server ends the connection (then again) or ``until``."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            endings.append(("connect failed", 0.0))
            await asyncio.sleep(1)
            continue
        started = loop.time()
        try:
            writer.write(head)
            while loop.time() < until:
                writer.write(piece)
                await writer.drain()
                ending = await _ending(reader, every)
                if ending is not None:
                    endings.append((ending, loop.time() - started))
                    break
        except ConnectionError:
            endings.append(("reset", loop.time() - started))
        finally:
            writer.close()


def _timed(h: Harness, path: str) -> tuple[Answer, float]:
    started = time.monotonic()
    answer = h.client.send("GET", path, headers={"Connection": "close"})  # each on a fresh connection
    return answer, time.monotonic() - started


def run(h: Harness, seconds: float | None = None) -> Result:
    settings = Settings()
    result = Result("slow clients")
    # Long enough for a slow body to reach its deadline.
    seconds = seconds or settings.body_timeout_seconds + SLACK_SECONDS + 2
    port = urlsplit(h.client.base_url).port
    assert port is not None
    role_id = h.client.create(h.roles.next()).json()["id"]
    before = h.stored.role_ids()
    request_head = b"GET /metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    # Every header the server asks for, so that only the body's pace is wrong (the run is far shorter
    # than the token's life).
    auth = "".join(f"{name}: {value}\r\n" for name, value in h.client.caller.headers().items())
    body_head = (f"POST /PractitionerRole HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}userid: {USERID}\r\nUser-Agent: {USER_AGENT}\r\n"
                 f"Content-Type: {FHIR_JSON}\r\nContent-Length: {settings.max_body_bytes}\r\n\r\n").encode()
    heads: list[tuple[str, float]] = []
    bodies: list[tuple[str, float]] = []
    fresh: list[tuple[str, Answer, float]] = []

    def fresh_requests(until: float) -> None:
        while time.monotonic() < until:
            for path in ("/metadata", f"/PractitionerRole/{role_id}"):
                answer, took = _timed(h, path)
                fresh.append((path, answer, took))
            time.sleep(0.05)

    async def load() -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        tasks = [asyncio.create_task(_trickle(port, request_head, b"X-Slow: y\r\n", HEAD_LINE_SECONDS, until, heads))
                 for _ in range(HEAD_CLIENTS)]
        tasks += [asyncio.create_task(_trickle(port, body_head, b" " * (BODY_BYTES_PER_SECOND // 10), 0.1, until, bodies))
                  for _ in range(BODY_CLIENTS)]
        await asyncio.sleep(1)  # all connected and trickling
        with ThreadPoolExecutor(2) as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, fresh_requests, time.monotonic() + seconds - 2) for _ in range(2)))
        await asyncio.gather(*tasks)

    asyncio.run(load())
    answers = [a for _, a, _ in fresh]
    took = sorted(t for _, _, t in fresh)
    p99 = took[max(0, round(len(took) * 0.99) - 1)] if took else float("inf")
    result.tried = (f"{HEAD_CLIENTS} slow heads (a line every {HEAD_LINE_SECONDS:g} s), {BODY_CLIENTS} slow bodies "
                    f"({settings.max_body_bytes} B at {BODY_BYTES_PER_SECOND} B/s) for {seconds:.0f} s; "
                    f"{len(fresh)} fresh requests (/metadata, authenticated read): {statuses(answers)}")
    if took:
        result.notes.append(f"fresh requests: p50 {statistics.median(took) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
                            f"max {took[-1] * 1000:.0f} ms")
    result.notes.append(f"slow heads ended: {_describe(heads)}")
    result.notes.append(f"slow bodies ended: {_describe(bodies)}")
    result.server_errors = sum(a.is_5xx for a in answers)
    if not answers or any(a.status != 200 for a in answers):
        result.broken.append(f"fresh requests not all 200: {statuses(answers)}")
    if p99 > P99_SECONDS:
        result.broken.append(f"fresh requests p99 {p99 * 1000:.0f} ms, over {P99_SECONDS * 1000:.0f} ms")
    _judge(result, "slow head", heads, settings.header_timeout_seconds)
    _judge(result, "slow body", bodies, settings.body_timeout_seconds)
    if (new := h.stored.role_ids() - before):
        result.broken.append(f"{len(new)} role(s) stored from slow bodies")
    return result.finish()


def _describe(endings: list[tuple[str, float]]) -> str:
    if not endings:
        return "none"
    counts = ", ".join(f"{k}×{n}" for k, n in Counter(e for e, _ in endings).most_common())
    return f"{counts}, after {min(s for _, s in endings):.1f}-{max(s for _, s in endings):.1f} s"


def _judge(result: Result, what: str, endings: list[tuple[str, float]], deadline: float) -> None:
    if not endings:
        result.broken.append(f"no {what} was ended by the server")
    if other := [e for e, _ in endings if e != "408"]:
        result.broken.append(f"{len(other)} {what}(s) ended otherwise than 408: {Counter(other).most_common(3)}")
    if late := [s for _, s in endings if s > deadline + SLACK_SECONDS]:
        result.broken.append(f"{len(late)} {what}(s) held past {deadline:g} s (up to {max(late):.1f} s)")
