"""Comparing an answer with a step's expectations: no IO, plain data in, a list of differences out."""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from .manifest import Expect


class _Missing:
    def __repr__(self) -> str:
        return "absent"


MISSING: t.Any = _Missing()


@dataclass(frozen=True)
class Answer:
    """What the server answered, as the checks need it."""

    status: int
    headers: t.Mapping[str, str]  # case-insensitive, as requests' are
    text: str

    def json(self) -> t.Any:
        """The body as JSON; MISSING if empty; None if it is not JSON."""
        if not self.text.strip():
            return MISSING
        try:
            return json.loads(self.text)
        except ValueError:
            return None


def lookup(doc: t.Any, path: str) -> t.Any:
    """The value at a dotted ``path``: object keys, list indexes, ``*`` for every item of a list (the
    values found, as a list) and ``#`` for a list's length. MISSING where there is nothing."""
    node = doc
    parts = path.split(".") if path else []
    for i, part in enumerate(parts):
        if part == "*":
            if not isinstance(node, list):
                return MISSING
            rest = ".".join(parts[i + 1:])
            found = [lookup(item, rest) for item in node]
            return [v for v in found if v is not MISSING]
        if part == "#":
            return len(node) if isinstance(node, list) else MISSING
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return MISSING
    return node


def _equal(got: t.Any, wanted: t.Any) -> bool:
    """JSON equality: unlike Python's, ``true`` is not ``1``."""
    if isinstance(got, bool) or isinstance(wanted, bool):
        return got is wanted
    if isinstance(got, list) and isinstance(wanted, list):
        return len(got) == len(wanted) and all(_equal(g, w) for g, w in zip(got, wanted, strict=True))
    if isinstance(got, dict) and isinstance(wanted, dict):
        return got.keys() == wanted.keys() and all(_equal(got[k], wanted[k]) for k in got)
    return bool(got == wanted)


def diagnostics(doc: t.Any) -> list[str]:
    """The diagnostics of an OperationOutcome's issues; empty for anything else."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
        return []
    return [i.get("diagnostics", "") for i in doc.get("issue", []) if isinstance(i, dict)]


def _kind(doc: t.Any) -> str:
    if doc is MISSING:
        return "an empty body"
    if isinstance(doc, dict) and "resourceType" in doc:
        return f"a {doc['resourceType']}"
    return "a body that is not a FHIR resource"


def compare(expect: Expect, answer: Answer) -> list[str]:
    """Every way ``answer`` differs from ``expect`` (already substituted), shortest first: the status,
    then messages, headers and body checks."""
    differences = []
    doc = answer.json()
    if answer.status not in expect.status:
        statuses = " or ".join(str(s) for s in expect.status)
        said = diagnostics(doc)
        differences.append(f"status {answer.status}, expected {statuses}" + (f": {'; '.join(said)}" if said else ""))
    if expect.messages:
        if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
            differences.append(f"expected an OperationOutcome, got {_kind(doc)}")
        else:
            said = diagnostics(doc)
            differences += [f"missing message {m!r}; got {said}" for m in expect.messages if m not in said]
    for name, wanted in expect.headers.items():
        got = answer.headers.get(name)
        if wanted is True and got is None:
            differences.append(f"header {name} missing")
        elif wanted is False and got is not None:
            differences.append(f"header {name} present: {got!r}")
        elif isinstance(wanted, str) and got != wanted:
            differences.append(f"header {name} is {got!r}, expected {wanted!r}")
    if expect.body and (doc is MISSING or doc is None):
        differences.append(f"expected a JSON body, got {_kind(doc)}")
    elif expect.body:
        for path, wanted in expect.body.items():
            got = lookup(doc, path)
            if wanted is None and got not in (MISSING, None):
                differences.append(f"{path} is {got!r}, expected absent or null")
            elif wanted is not None and not _equal(got, wanted):
                differences.append(f"{path} is {got!r}, expected {wanted!r}")
    if expect.empty_body and doc is not MISSING:
        differences.append(f"expected no body, got {_kind(doc)}")
    return differences


def saved_value(source: str, answer: Answer) -> str | None:
    """The value ``source`` (``body.<path>`` or ``headers.<Name>``) names in ``answer``, as a string."""
    where, _, path = source.partition(".")
    if where == "headers":
        return answer.headers.get(path)
    value = lookup(answer.json(), path)
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
