"""The load driver: N connections in one asyncio loop, each sending its next request as soon as the
previous one is answered (a closed loop), for a fixed time.

Latencies are kept whole (a few thousand per second) so the percentiles are exact, not binned.
"""

from __future__ import annotations

import asyncio
import math
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: t.Mapping[str, str] = field(default_factory=dict)


class Connection(t.Protocol):
    """What one client connection sends next, and what it learns from each answer (e.g. a new ETag)."""

    def next_request(self) -> Request: ...

    def answered(self, status: int, headers: t.Mapping[str, str], body: bytes) -> None: ...


@dataclass
class Tally:
    """What one run of :func:`drive` saw; ``errors`` counts unexpected statuses and exceptions."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES and text not in self.error_samples:
            self.error_samples.append(text)


def percentile(values: t.Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def open_session(connections: int) -> aiohttp.ClientSession:
    """At most ``connections`` sockets at once, as many as there are connections."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                 timeout=aiohttp.ClientTimeout(total=30))


async def drive(session: aiohttp.ClientSession, base_url: str, connections: t.Sequence[Connection],
                seconds: float, expected: t.Collection[int]) -> Tally:
    """Run every connection for ``seconds``; a request under way at the end is waited for and counted,
    and ``Tally.seconds`` runs until the last answer."""
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds

    async def loop(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            request = connection.next_request()
            sent = time.perf_counter()
            try:
                async with session.request(request.method, base_url + request.path, data=request.body,
                                           headers=request.headers) as response:
                    body = await response.read()
            except (TimeoutError, aiohttp.ClientError) as e:
                tally.latencies.append(time.perf_counter() - sent)
                tally.statuses[type(e).__name__] += 1
                tally.error(f"{request.method} {request.path}: {type(e).__name__} {e}")
                continue
            tally.latencies.append(time.perf_counter() - sent)
            tally.statuses[str(response.status)] += 1
            if response.status not in expected:
                tally.error(f"{request.method} {request.path}: {response.status} {body[:300]!r}")
            connection.answered(response.status, response.headers, body)

    await asyncio.gather(*(loop(c) for c in connections))
    tally.seconds = time.perf_counter() - started
    return tally
