"""A fault at each database command of a create and of an update: MongoDB's ``failCommand`` fail
point, armed for the server's own client only, fails one command once with a network error before it
ran, a mongos HostUnreachable, or a write concern error (the command ran, its durability unconfirmed).

Promised: no 500; a 503 says whether the change may have been applied; nothing is
stored that the answer said was not; the client's immediate retry (same Idempotency-Key for a create,
same If-Match for an update) gets 201/200, or 409 on an update that was in fact applied; no period is
left held that no role owns; every version up to the current one is in the history.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
import uuid

from ..outcome import Msg
from .client import Answer
from .harness import Harness
from .report import Result, statuses

LOCAL = "https://example.org/ns/reliability-role-id"
# What a fail point does to one command (tests/test_faults.py injects the same).
FAULTS: dict[str, dict[str, t.Any]] = {
    "network error": {"closeConnection": True},
    "HostUnreachable": {"errorCode": 6},
    "write concern error": {"writeConcernError": {"code": 64, "codeName": "WriteConcernFailed",
                                                  "errmsg": "waiting for replication timed out", "errInfo": {"wtimeout": True}}},
}
# (command, how many of it come first): with an Idempotency-Key, a create claims the key (insert),
# reads the references (find), reserves the business key, inserts the role and keeps version 1 (one
# bulkWrite), records the answer (update).
CREATE = [("insert", 0), ("find", 0), ("bulkWrite", 0), ("update", 0)]
# An update that moves the period: reads the current version (find); reserves the new period, replaces
# the role and keeps the versions (one bulkWrite); releases the old period (update).
UPDATE = [("find", 0), ("bulkWrite", 0), ("update", 0)]
_UNKNOWN = Msg.DB_OUTCOME_UNKNOWN.value.text
_NOT_APPLIED = Msg.DB_UNAVAILABLE.value.text


def run(h: Harness) -> Result:
    result = Result("database faults")
    answers: list[Answer] = []
    held = lost = 0
    for fault_name, fault in FAULTS.items():
        for kind, commands in (("create", CREATE), ("update", UPDATE)):
            for command, skip in commands:
                where = f"{kind} {command}#{skip + 1} {fault_name}"
                try:
                    problems, first = (_create if kind == "create" else _update)(h, command, skip, fault)
                finally:
                    h.stored.no_faults()
                answers.append(first)
                said = first.messages()[:1] if first.status == 503 else []
                result.notes.append(f"{where}: {first.describe()}{' ' + repr(said[0][:40]) if said else ''}")
                problems += [f"left held: {p}" for p in h.stored.unowned_periods()]
                if problems:
                    lost += 1
                    result.broken += [f"{where}: {p}" for p in problems]
                else:
                    held += 1
    result.server_errors = sum(a.is_5xx and a.status != 503 for a in answers)
    result.tried = (f"{len(answers)} faults ({len(FAULTS)} kinds x {len(CREATE)} create and {len(UPDATE)} update commands), "
                    f"each then retried: first answers {statuses(answers)}; held {held}, lost {lost}")
    result.lost = "nothing" if not lost else f"{lost} fault(s) left an untrue answer or debris"
    return result.finish()


def _create(h: Harness, command: str, skip: int, fault: dict[str, t.Any]) -> tuple[list[str], Answer]:
    role, value = h.roles.next(), uuid.uuid4().hex
    role["identifier"] = [*role.get("identifier", []), {"system": LOCAL, "value": value}]
    body, key = json.dumps(role).encode(), {"Idempotency-Key": value}
    h.stored.fail(command, skip, fault)
    first = h.client.send("POST", "/PractitionerRole", body, headers=key)
    h.stored.no_faults()
    problems = _judge_first(first, (201,))
    stored = h.stored.roles_with(LOCAL, value)
    if first.status == 201 and len(stored) != 1 or _said_not_applied(first) and stored:
        problems.append(f"answered {first.describe()} but {len(stored)} role(s) stored")
    retry = h.client.send("POST", "/PractitionerRole", body, headers=key)
    stored = h.stored.roles_with(LOCAL, value)
    if retry.status not in (200, 201) or len(stored) != 1:
        problems.append(f"retry answered {retry.describe()}, {len(stored)} role(s) stored")
    elif first.status == 201 and retry.json()["id"] != first.json()["id"]:
        problems.append("the retry answered another role than the first 201")
    problems += [f"version {v} not in history" for s in stored for v in h.stored.missing_versions(s["_id"], s["vid"])]
    return problems, first


def _update(h: Harness, command: str, skip: int, fault: dict[str, t.Any]) -> tuple[list[str], Answer]:
    role, value = h.roles.next(), uuid.uuid4().hex
    role["identifier"] = [*role.get("identifier", []), {"system": LOCAL, "value": value}]
    created = h.client.create(role)
    if created.status != 201:
        return [f"setting up: create answered {created.describe()}"], created
    changed = created.json()
    start = dt.date.fromisoformat(changed["period"]["start"]) - dt.timedelta(days=1)
    changed["period"] = {**changed["period"], "start": start.isoformat()}
    body, path, if_match = json.dumps(changed).encode(), f"/PractitionerRole/{changed['id']}", {"If-Match": 'W/"1"'}
    h.stored.fail(command, skip, fault)
    first = h.client.send("PUT", path, body, headers=if_match)
    h.stored.no_faults()
    problems = _judge_first(first, (200,))
    [stored] = h.stored.roles_with(LOCAL, value)
    if first.status == 200 and stored["vid"] != 2 or _said_not_applied(first) and stored["vid"] != 1:
        problems.append(f"answered {first.describe()} but the stored version is {stored['vid']}")
    retry = h.client.send("PUT", path, body, headers=if_match)
    if retry.status != (200 if stored["vid"] == 1 else 409):
        problems.append(f"retry answered {retry.describe()} with version {stored['vid']} stored")
    [stored] = h.stored.roles_with(LOCAL, value)
    if stored["vid"] != 2:
        problems.append(f"after the retry the stored version is {stored['vid']}")
    problems += [f"version {v} not in history" for v in h.stored.missing_versions(stored["_id"], stored["vid"])]
    return problems, first


def _judge_first(first: Answer, success: tuple[int, ...]) -> list[str]:
    if first.status in success:
        return []
    if first.status == 503 and first.messages()[:1] in ([_UNKNOWN], [_NOT_APPLIED]):
        return []
    return [f"first answer {first.describe()}: {first.messages()[:1]}"]


def _said_not_applied(answer: Answer) -> bool:
    return answer.status == 503 and answer.messages()[:1] == [_NOT_APPLIED]
