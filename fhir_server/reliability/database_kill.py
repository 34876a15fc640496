"""kill -9 of the database under a create load, then a restart on the same port and storage.

Promised: while it is down every answer is a 503 saying so, within the client's timeout (no 500, no
hang, no dropped connection); afterwards every create that was answered 201 reads back as answered,
nothing half-written is visible, and creates succeed again without restarting the server."""

from __future__ import annotations

import time

from ..outcome import Msg, issue
from .harness import Harness
from .load import Load, Sent
from .report import Result, statuses
from .stored import judge_stored

RECOVERY_SECONDS = 30  # a create must succeed again within this of the restart


def run(h: Harness, seconds: float = 30) -> Result:
    result = Result("database kill -9")
    before = h.stored.role_ids()
    unavailable = issue(Msg.DB_UNAVAILABLE).diagnostics
    began = time.monotonic()
    with Load(h.client, h.roles) as load:
        time.sleep(seconds * 0.25)
        h.lab.database.kill()
        killed = time.monotonic()
        time.sleep(seconds * 0.3)
        restarting = time.monotonic()
        h.lab.database.start()
        restarted = time.monotonic()
        time.sleep(max(began + seconds - restarted, RECOVERY_SECONDS / 3))
    down = load.during(killed, restarting)
    after = [s for s in load.log if s.sent >= restarted]
    result.tried = (f"{len(load.log)} creates over {seconds:.0f} s ({load.threads} threads, 1 in 4 plain JSON); "
                    f"database killed at {killed - began:.1f} s, down {restarting - killed:.1f} s, "
                    f"back after {restarted - restarting:.1f} s; all answers: {statuses([s.answer for s in load.log])}")
    slowest = max((s.answered - s.sent for s in down), default=0.0)
    result.notes.append(f"while down: {statuses([s.answer for s in down])}, the slowest in {slowest:.2f} s")
    result.server_errors = sum(s.answer.is_5xx and s.answer.status != 503 for s in load.log)
    # A create whose write was on its way when the database died may have been applied: it says so.
    said = ([unavailable], [issue(Msg.DB_OUTCOME_UNKNOWN).diagnostics])
    if wrong := [s for s in down if s.answer.status != 503 or s.answer.messages() not in said]:
        result.broken.append(f"{len(wrong)} answer(s) while down were not a 503 that says so: {statuses([s.answer for s in wrong])}")
    if failed := [s for s in load.log if s.answer.status is None]:
        result.broken.append(f"{len(failed)} request(s) got no answer: {statuses([s.answer for s in failed])}")
    _check_recovery(result, after, restarted)
    judge_stored(result, h.client, h.stored, load.acknowledged(), before)
    return result.finish()


def _check_recovery(result: Result, after: list[Sent], restarted: float) -> None:
    first = next((s for s in sorted(after, key=lambda s: s.answered) if s.answer.status == 201), None)
    if first is None or first.answered - restarted > RECOVERY_SECONDS:
        result.broken.append(f"no create succeeded within {RECOVERY_SECONDS} s of the restart")
    else:
        result.notes.append(f"after restart: {statuses([s.answer for s in after])}; "
                            f"first 201 {first.answered - restarted:.1f} s after the database answered")

