"""N identical creates at once, over several workers: exactly one 201, the others 422 duplicate,
exactly one role stored (README: Duplicates under concurrency)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..outcome import Msg, issue
from .client import Answer
from .harness import Harness
from .report import Result, statuses

PARALLEL = 100


def run(h: Harness) -> Result:
    result = Result("parallel identical creates")
    role = h.roles.next()
    before = h.stored.role_ids()
    start = threading.Barrier(PARALLEL)

    def create(_: int) -> Answer:
        start.wait(30)  # all at once, not as the pool happens to start them
        return h.client.create(role)

    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(create, range(PARALLEL)))
    duplicate = issue(Msg.DUPLICATE).diagnostics
    created = [a for a in answers if a.status == 201]
    refused = [a for a in answers if a.status == 422 and a.messages() == [duplicate]]
    stored = h.stored.role_ids() - before
    result.tried = f"{PARALLEL} parallel POST /PractitionerRole of one role: {statuses(answers)}"
    result.server_errors = sum(a.is_5xx for a in answers)
    result.lost = f"nothing; {len(stored)} role stored" if len(stored) == 1 else f"{len(stored)} roles stored"
    for answer in answers:
        if answer.is_5xx:
            result.broken.append(f"{answer.status}: {answer.messages()}")
    if len(created) != 1:
        result.broken.append(f"{len(created)} answers 201, not exactly one")
    if len(refused) != PARALLEL - 1:
        result.broken.append(f"{len(refused)} answers 422 duplicate, not {PARALLEL - 1}")
    if len(stored) != 1:
        result.broken.append(f"{len(stored)} roles stored, not exactly one")
    elif created and created[0].json()["id"] not in stored:
        result.broken.append("the role stored is not the one answered 201")
    return result.finish()
