"""The corpus of :mod:`.corpus` against every route that takes a role: FHIR create and update, the
plain-JSON create. Each must answer a 4xx in the route's error format (an OperationOutcome, the
plain API's envelope) and store nothing."""

from __future__ import annotations

import copy
import typing as t
from dataclasses import dataclass

from . import corpus
from .client import Answer
from .corpus import BadInput
from .harness import Harness
from .payloads import PLAIN_EXAMPLE
from .report import Result, statuses

_PLAIN_REQUIRED = ("practitionerId", "role")


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    plain: bool
    inputs: list[BadInput]
    headers: dict[str, str]


def _fhir_text(valid: dict[str, t.Any]) -> t.Callable[[str], dict[str, t.Any]]:
    def with_text(text: str) -> dict[str, t.Any]:
        role = copy.deepcopy(valid)
        role["code"][0]["text"] = text
        return role
    return with_text


def _targets(h: Harness) -> list[Target]:
    create = h.roles.next()  # new, so that a body wrongly accepted would be stored, not refused as a duplicate
    stored = h.client.create(h.roles.next()).json()
    update = {**stored, "telecom": [{"system": "email", "value": "bad.inputs@example.com", "use": "work"}]}
    plain = dict(PLAIN_EXAMPLE)
    # The server sets id and meta itself; only their types are checked, which the create walk covers.
    update_skip = lambda path: path[0] in ("meta", "id")  # noqa: E731
    return [
        Target("POST", "/PractitionerRole", False,
               [*corpus.malformed(create), *corpus.hostile(create, _fhir_text(create)), *corpus.wrong_types(create)], {}),
        Target("PUT", f"/PractitionerRole/{stored['id']}", False,
               [*corpus.malformed(update), *corpus.hostile(update, _fhir_text(update)), *corpus.wrong_types(update, skip=update_skip)],
               {"If-Match": f'W/"{stored["meta"]["versionId"]}"'}),
        Target("POST", "/v1/practitioner-roles", True,
               [*corpus.malformed(plain), *corpus.hostile(plain, lambda text: {**plain, "organizationName": text}),
                *corpus.wrong_types(plain, nullable=lambda path: len(path) > 1 or path[0] in _PLAIN_REQUIRED)], {}),
    ]


def _in_format(answer: Answer, plain: bool) -> bool:
    doc = answer.json()
    if not isinstance(doc, dict):
        return False
    return isinstance(doc.get("error"), dict) if plain else doc.get("resourceType") == "OperationOutcome"


def run(h: Harness) -> Result:
    result = Result("bad inputs")
    targets = _targets(h)
    before = h.stored.counts()
    tried = []
    for target in targets:
        answers = []
        for bad in target.inputs:
            headers: dict[str, str | None] = {**target.headers}
            if bad.content_type is not None:
                headers["Content-Type"] = bad.content_type or None
            answer = h.client.send(target.method, target.path, bad.body, plain=target.plain, headers=headers)
            answers.append(answer)
            if answer.status is None or not 400 <= answer.status < 500:
                result.broken.append(f"{target.method} {target.path} {bad.name}: {answer.describe()} {answer.messages()[:1]}")
            elif not _in_format(answer, target.plain):
                result.broken.append(f"{target.method} {target.path} {bad.name}: {answer.status} not in the route's error format")
        result.server_errors += sum(a.is_5xx for a in answers)
        tried.append(f"{target.method} {target.path}: {len(answers)} bodies, {statuses(answers)}")
    after = h.stored.counts()
    result.tried = "; ".join(tried)
    result.lost = "nothing stored" if after == before else f"stored: {before} became {after}"
    if after != before:
        result.broken.append(f"bad inputs changed what is stored: {before} → {after}")
    return result.finish()
