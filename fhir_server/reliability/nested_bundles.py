"""Bundles as an attacker sends them: batches nested in a batch through entries that name the Bundle
endpoint (``?``, ``""``, ``/``, ``%2F``, ``./``), a transaction nested in a transaction, and a batch of
the largest reads there are.

Promised: no 5xx; every nested entry is refused (400) without running its inner Bundle, a nested
transaction refuses the whole; the big batch ends within REQUEST_DEADLINE_SECONDS with an answer
under MAX_RESPONSE_BYTES (entries past it 413, past the deadline 503); the workers' memory stays
where it was (the same attack once took a worker from ~190 MB to ~950 MB)."""

from __future__ import annotations

import json
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .client import Answer, Client
from .harness import Harness
from .report import Result, statuses

SPELLINGS = ["?", "", "/", "%2F", "./"]
NESTED, READS = 100, 100
ATTACKS = 3
HISTORY = 50  # roles created for the big batch to read
MEMORY_GROWTH_MB = 100  # more than this on any worker is a leak
_MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # the default of MAX_RESPONSE_BYTES; the lab sets no other


def _bundle(kind: str, entries: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _get(url: str) -> dict[str, t.Any]:
    return {"request": {"method": "GET", "url": url}}


def _rss_mb(pids: list[int]) -> dict[int, float]:
    sizes = {}
    for pid in pids:
        try:
            line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        sizes[pid] = int(line.split()[1]) / 1024
    return sizes


def _entry_statuses(answer: Answer) -> list[str]:
    doc = answer.json()
    return [e.get("response", {}).get("status", "?") for e in doc.get("entry", [])] if isinstance(doc, dict) else []


def run(h: Harness) -> Result:
    result = Result("nested and big Bundles")
    client = Client(h.client.base_url, h.client.caller, timeout=40.0)  # past the server's own deadline
    workers = h.lab.server.worker_pids()
    before = _rss_mb(workers)
    inner = _bundle("batch", [_get("metadata")] * READS)
    nested = _bundle("batch", [{"request": {"method": "POST", "url": SPELLINGS[i % len(SPELLINGS)]}, "resource": inner}
                               for i in range(NESTED)])
    body = json.dumps(nested).encode()
    answers, sizes, times = [], [], []
    for _ in range(ATTACKS):
        started = time.monotonic()
        answer = client.send("POST", "/", body)
        times.append(time.monotonic() - started)
        answers.append(answer)
        sizes.append(len(answer.body))
        if answer.status != 200 or set(_entry_statuses(answer)) != {"400 Bad Request"}:
            result.broken.append(f"nested batch: {answer.describe()}, entries {sorted(set(_entry_statuses(answer)))}")
    transaction = _bundle("transaction", [{"request": {"method": "POST", "url": "?"},
                                           "resource": _bundle("transaction", [_get("metadata")])}])
    nested_transaction = client.send("POST", "/", json.dumps(transaction).encode())
    answers.append(nested_transaction)
    if nested_transaction.status != 400:
        result.broken.append(f"transaction in a transaction: {nested_transaction.describe()}")

    with ThreadPoolExecutor(6) as pool:  # full history pages, so that 100 of them pass MAX_RESPONSE_BYTES
        list(pool.map(lambda _: h.client.create(h.roles.next()), range(HISTORY)))
    big = _bundle("batch", [_get("PractitionerRole/_history?_count=50")] * 100)
    started = time.monotonic()
    big_answer = client.send("POST", "/", json.dumps(big).encode())
    big_seconds = time.monotonic() - started
    answers.append(big_answer)
    if big_answer.status != 200 or len(big_answer.body) > _MAX_RESPONSE_BYTES + 1024 * 1024:
        result.broken.append(f"big batch: {big_answer.describe()}, {len(big_answer.body)} bytes")
    after = _rss_mb(h.lab.server.worker_pids())
    grown = {pid: after[pid] - before[pid] for pid in before if pid in after}
    if any(g > MEMORY_GROWTH_MB for g in grown.values()):
        result.broken.append(f"worker memory grew by {max(grown.values()):.0f} MB")
    result.server_errors = sum(a.is_5xx for a in answers)
    result.tried = (f"{ATTACKS}× a batch of {NESTED} entries POSTing a batch of {READS} reads to "
                    f"{'/'.join(repr(s) for s in SPELLINGS)} ({len(body) // 1024} KB each); a transaction in a transaction; "
                    f"a batch of 100 history pages of 50; answers: {statuses(answers)}")
    result.notes.append(f"nested batch answers {max(sizes) // 1024} KB in at most {max(times):.2f} s, every entry 400; "
                        f"transaction in a transaction {nested_transaction.describe()}")
    big_statuses = ", ".join(f"{s}×{n}" for s, n in sorted({s: _entry_statuses(big_answer).count(s)
                                                            for s in _entry_statuses(big_answer)}.items()))
    result.notes.append(f"big batch: {len(big_answer.body) // 1024} KB in {big_seconds:.2f} s ({big_statuses})")
    result.notes.append("worker memory MB before → after: " + ", ".join(
        f"{before[p]:.0f} → {after[p]:.0f}" for p in sorted(before) if p in after))
    result.lost = "nothing"
    return result.finish()
