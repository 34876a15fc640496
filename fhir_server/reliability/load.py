"""A steady create load from a few client threads, every request logged with when it was sent and
answered, so that a scenario can judge each answer by what was broken at the time."""

from __future__ import annotations

import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .client import Answer, Client
from .payloads import PLAIN_EXAMPLE, Roles
from .stored import Acknowledged

PLAIN_EVERY = 4  # one create in four goes through the plain-JSON API


@dataclass(frozen=True)
class Sent:
    sent: float
    answered: float
    plain: bool
    answer: Answer


class Load:
    """``with Load(client, roles, threads) as load:`` creates until the block ends."""

    def __init__(self, client: Client, roles: Roles, threads: int = 6) -> None:
        self.client = client
        self.roles = roles
        self.threads = threads
        self.log: list[Sent] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._count = 0

    def __enter__(self) -> Load:
        self._pool = ThreadPoolExecutor(self.threads)
        for _ in range(self.threads):
            self._pool.submit(self._run)
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self._stop.set()
        assert self._pool is not None
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._count += 1
                plain = self._count % PLAIN_EVERY == 0
            sent = time.monotonic()
            answer = self.client.create_plain(PLAIN_EXAMPLE) if plain else self.client.create(self.roles.next())
            with self._lock:
                self.log.append(Sent(sent, time.monotonic(), plain, answer))

    def acknowledged(self) -> Acknowledged:
        acked = Acknowledged()
        for s in self.log:
            if s.answer.status == 201:
                doc = s.answer.json()
                if s.plain:
                    acked.plain[doc["data"]["id"]] = doc["data"]
                else:
                    acked.fhir[doc["id"]] = doc
        return acked

    def during(self, start: float, end: float) -> list[Sent]:
        """Requests sent at or after ``start`` and answered by ``end``."""
        return [s for s in self.log if s.sent >= start and s.answered <= end]
