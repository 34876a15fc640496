"""Fuzzing: schemathesis generates requests for every operation of ``/openapi.json``, valid ones and
invalid ones; Hypothesis mutates valid PractitionerRoles (:mod:`.mutations`) and POSTs them. No answer
may be a 5xx. Both are bounded by a number of examples and a time budget."""

from __future__ import annotations

import time
import typing as t
from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Err

from .client import USER_AGENT, USERID, Answer
from .harness import Harness
from .mutations import encode, mutated
from .payloads import example_creates, reference_records
from .report import Result

# (examples per operation and generation mode, role mutations, seconds for each half)
QUICK = (15, 600, 30.0)
FULL = (30, 2000, 150.0)
_SHOWN = 5  # server errors shown in full; the rest only counted


def run(h: Harness, quick: bool) -> Result:
    per_operation, mutations, budget = QUICK if quick else FULL
    result = Result("fuzz")
    openapi = _openapi(h, per_operation, time.monotonic() + budget, result)
    roles = _mutations(h, mutations, time.monotonic() + budget, result)
    result.tried = f"{openapi}; {roles}"
    result.lost = "nothing (no 5xx)" if not result.server_errors else f"{result.server_errors} requests answered 5xx"
    return result.finish()


def _settings(examples: int) -> settings:
    # No example database (nothing written to the working tree) and no shrinking: a 5xx is reported
    # with its request as found, and the time stays bounded.
    return settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


def _record(result: Result, what: str, status: int, detail: str) -> None:
    if status >= 500:
        result.server_errors += 1
        if result.server_errors <= _SHOWN:
            result.broken.append(f"{status} for {what}: {detail[:500]}")


def _openapi(h: Harness, per_operation: int, deadline: float, result: Result) -> str:
    schema = schemathesis.openapi.from_url(h.client.base_url + "/openapi.json")
    statuses: Counter[int] = Counter()
    operations = []
    for found in schema.get_all_operations():
        if isinstance(found, Err):
            raise found.err()  # the server's own document does not parse: that is the finding
        operations.append(found.ok())
    for operation in operations:
        takes_input = bool(list(operation.iter_parameters())) or bool(operation.body)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if time.monotonic() > deadline or (mode == schemathesis.GenerationMode.NEGATIVE and not takes_input):
                break

            @given(case=operation.as_strategy(generation_mode=mode))
            @_settings(per_operation)
            def send(case: t.Any) -> None:
                if time.monotonic() > deadline:
                    return
                auth = {**h.client.caller.headers(), "userid": USERID, "User-Agent": USER_AGENT}
                response = case.call(headers=auth, timeout=10)
                statuses[response.status_code] += 1
                _record(result, f"{case.method} {case.formatted_path}", response.status_code, case.as_curl_command(headers=auth))

            send()
    return (f"schemathesis on /openapi.json: {len(operations)} operations, {sum(statuses.values())} requests "
            f"({', '.join(f'{k}×{n}' for k, n in statuses.most_common())})")


def _mutations(h: Harness, examples: int, deadline: float, result: Result) -> str:
    for record in reference_records():  # what the examples of examples/create/ refer to
        h.client.send("POST", f"/{record['resourceType']}", encode(record))
    bases = example_creates()
    answers: list[Answer] = []

    @given(base=st.sampled_from(bases), data=st.data())
    @_settings(examples)
    def send(base: dict[str, t.Any], data: st.DataObject) -> None:
        if time.monotonic() > deadline:
            return
        body = encode(data.draw(mutated(h.roles.next(base))))
        answer = h.client.create_raw(body)
        answers.append(answer)
        _record(result, "POST /PractitionerRole", answer.status or 0, body.decode("utf-8", "replace"))

    send()
    counts = Counter(a.describe() for a in answers)
    return (f"mutations of {len(bases)} valid creates: {len(answers)} POST /PractitionerRole "
            f"({', '.join(f'{k}×{n}' for k, n in counts.most_common())})")
