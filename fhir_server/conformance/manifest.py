"""The examples' manifest: ordered steps, each a request and what its answer must be.

``examples/manifest.json`` (``examples/README.md`` describes it for people)::

    {"title": "…",
     "fresh": {"99ZZZA": "cpn"},                       literals replaced by a new value in every run
     "headers": {"x-api-key": "{{api_key}}", …},       sent with every step
     "steps": [{"name": "create-minimal", "title": "…", "method": "POST", "path": "/PractitionerRole",
                "headers": {"Prefer": "return=minimal"},     a null value drops a default header
                "body": "create/minimal.json",               relative to the manifest
                "save": {"minimal_role": "body.id", "minimal_etag": "headers.ETag"},
                "expect": {"status": 201, "messages": […], "headers": {…}, "body": {…}, "empty_body": true}}]}

Loading checks what can be checked without a server, and reports every problem at once: unknown keys
(a typo would otherwise silently check nothing), missing body files, and ``{{name}}`` placeholders that
no earlier step saves.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from .values import BUILT_IN, FRESH_KINDS, placeholders

MANIFEST_FILE = "manifest.json"
METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
SAVE_SOURCES = ("body.", "headers.")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP_KEYS = {"name", "title", "method", "path", "headers", "body", "save", "expect"}
_EXPECT_KEYS = {"status", "messages", "headers", "body", "empty_body"}
_TOP_KEYS = {"title", "description", "fresh", "headers", "steps"}


class ManifestError(Exception):
    """The manifest cannot be run as written; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Expect:
    """What an answer must be. Strings may hold fresh literals and ``{{name}}`` placeholders.

    ``status``: one status or several allowed; ``messages``: each must be the ``diagnostics`` of an
    issue of the OperationOutcome answered; ``headers``: name → exact value, ``true`` (present) or
    ``false`` (absent); ``body``: dotted path → value (``null``: absent), where ``*`` maps over a list
    and ``#`` is a list's length; ``empty_body``: the answer has no body.
    """

    status: tuple[int, ...]
    messages: tuple[str, ...] = ()
    headers: dict[str, str | bool] = field(default_factory=dict)
    body: dict[str, t.Any] = field(default_factory=dict)
    empty_body: bool = False


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    method: str
    path: str
    expect: Expect
    headers: dict[str, str | None] = field(default_factory=dict)
    body_file: Path | None = None
    #: value name → where the answer holds it: ``body.<path>`` or ``headers.<Name>``
    save: dict[str, str] = field(default_factory=dict)

    def body_text(self) -> str | None:
        return self.body_file.read_text(encoding="utf-8") if self.body_file else None


@dataclass(frozen=True)
class Manifest:
    title: str
    directory: Path
    fresh: dict[str, str]  # literal → kind of value replacing it
    headers: dict[str, str]
    steps: tuple[Step, ...]

    def saved_by(self) -> dict[str, str]:
        """Value name → the step that saves it."""
        return {name: step.name for step in self.steps for name in step.save}


def load_manifest(directory: Path) -> Manifest:
    """Read ``directory/manifest.json``.

    :raises ManifestError: naming every problem found.
    """
    path = directory / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ManifestError([f"{path}: {e}"]) from None
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ManifestError([f"{path}: expected a JSON object"])
    problems += _unknown_keys(raw, _TOP_KEYS, "manifest")
    fresh = _string_map(raw.get("fresh", {}), "fresh", problems)
    problems += [f"fresh: {literal!r} has unknown kind {kind!r} (one of {', '.join(sorted(FRESH_KINDS))})"
                 for literal, kind in fresh.items() if kind not in FRESH_KINDS]
    headers = _string_map(raw.get("headers", {}), "headers", problems)
    known = set(BUILT_IN)
    problems += _unknown_placeholders(headers, known, "headers")
    steps: list[Step] = []
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("steps: expected a non-empty list")
        raw_steps = []
    for n, raw_step in enumerate(raw_steps, 1):
        step = _step(raw_step, n, directory, known, problems)
        if step is not None:
            if step.name in {s.name for s in steps}:
                problems.append(f"step {n}: name {step.name!r} is used twice")
            steps.append(step)
            known |= set(step.save)
    if problems:
        raise ManifestError(problems)
    return Manifest(str(raw.get("title", "")), directory, fresh, headers, tuple(steps))


def _step(raw: t.Any, n: int, directory: Path, known: set[str], problems: list[str]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(f"step {n}: expected a JSON object")
        return None
    where = f"step {n} ({raw.get('name', '?')})"
    before = len(problems)
    problems += _unknown_keys(raw, _STEP_KEYS, where)
    for key in ("name", "title", "method", "path"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            problems.append(f"{where}: {key} must be a non-empty string")
    if isinstance(raw.get("method"), str) and raw["method"].upper() not in METHODS:
        problems.append(f"{where}: unknown method {raw['method']!r}")
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, (str, type(None))) for v in headers.values()):
        problems.append(f"{where}: headers must map names to strings (or null, to drop a default)")
        headers = {}
    save = _string_map(raw.get("save", {}), f"{where} save", problems)
    problems += [f"{where}: cannot save {name!r}: names are letters, digits and _" for name in save if not _NAME.fullmatch(name)]
    problems += [f"{where}: save {name!r} from {source!r}: must start with body. or headers."
                 for name, source in save.items() if not source.startswith(SAVE_SOURCES)]
    body_file = None
    if raw.get("body") is not None:
        body_file = directory / str(raw["body"])
        if not body_file.is_file():
            problems.append(f"{where}: body file {raw['body']} not found")
            body_file = None
    expect = _expect(raw.get("expect"), where, problems)
    # A step may use what it saves itself in its expectations (e.g. the Location of the id it creates).
    texts = [raw.get("path"), *headers.values(), body_file.read_text(encoding="utf-8") if body_file else None]
    problems += _unknown_placeholders(texts, known, where)
    problems += _unknown_placeholders(raw.get("expect"), known | set(save), f"{where} expect")
    if len(problems) > before or expect is None:
        return None
    return Step(raw["name"], raw["title"], raw["method"].upper(), raw["path"], expect, headers, body_file, save)


def _expect(raw: t.Any, where: str, problems: list[str]) -> Expect | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expect must be an object with at least a status")
        return None
    problems += _unknown_keys(raw, _EXPECT_KEYS, f"{where} expect")
    status = raw.get("status")
    statuses = tuple(status) if isinstance(status, list) else (status,)
    if not statuses or not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
        problems.append(f"{where}: expect.status must be an HTTP status or a list of them")
        return None
    messages = raw.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
        problems.append(f"{where}: expect.messages must be a list of strings")
        messages = []
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, (str, bool)) for v in headers.values()):
        problems.append(f"{where}: expect.headers must map names to a string, true or false")
        headers = {}
    body = raw.get("body", {})
    if not isinstance(body, dict):
        problems.append(f"{where}: expect.body must map paths to values")
        body = {}
    return Expect(statuses, tuple(messages), dict(headers), dict(body), bool(raw.get("empty_body", False)))


def _unknown_keys(raw: dict[str, t.Any], allowed: set[str], where: str) -> list[str]:
    return [f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})" for key in raw if key not in allowed]


def _string_map(raw: t.Any, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        problems.append(f"{where}: expected an object of strings")
        return {}
    return dict(raw)


def _unknown_placeholders(value: t.Any, known: set[str], where: str) -> list[str]:
    return [f"{where}: {{{{{name}}}}} is neither built in ({', '.join(sorted(BUILT_IN))}) nor saved by an earlier step"
            for name in sorted(placeholders(value) - known)]
