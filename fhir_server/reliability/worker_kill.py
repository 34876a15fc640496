"""kill -9 of gunicorn workers under a create load; the master starts new ones.

Promised: no 5xx; a worker loses the requests in flight on its connections when killed, so at most
one per client thread per kill fails, and only as a dropped connection; every create answered 201 reads back as answered; nothing
half-written is visible."""

from __future__ import annotations

import os
import random
import signal
import time

from .harness import Harness
from .load import Load
from .report import Result, statuses
from .stored import judge_stored


def run(h: Harness, seconds: float = 20, kills: int = 3) -> Result:
    result = Result("gunicorn worker kill -9")
    before = h.stored.role_ids()
    killed: list[int] = []
    with Load(h.client, h.roles) as load:
        for _ in range(kills):
            time.sleep(seconds / (kills + 1))
            workers = h.lab.server.worker_pids()
            if workers:
                victim = random.choice(workers)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        time.sleep(seconds / (kills + 1))
    answers = [s.answer for s in load.log]
    dropped = [a for a in answers if a.failure == "connection"]
    result.tried = (f"{len(answers)} creates over {seconds:.0f} s ({load.threads} threads, 1 in 4 plain JSON), "
                    f"{len(killed)} workers killed ({', '.join(map(str, killed))}); answers: {statuses(answers)}")
    result.notes.append(f"{len(dropped)} request(s) dropped with their worker (at most {load.threads} per kill); "
                        f"workers now {h.lab.server.worker_pids()}")
    result.server_errors = sum(a.is_5xx for a in answers)
    if len(killed) != kills:
        result.broken.append(f"found a worker to kill {len(killed)} time(s) of {kills}")
    if len(dropped) > len(killed) * load.threads:
        result.broken.append(f"{len(dropped)} connections dropped for {len(killed)} kills")
    if other := [a for a in answers if a.status is None and a.failure != "connection"]:
        result.broken.append(f"{len(other)} request(s) timed out")
    judge_stored(result, h.client, h.stored, load.acknowledged(), before)
    return result.finish()
