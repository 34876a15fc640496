"""The pass/fail table a person reads after a run, and the step list of ``--list``."""

from __future__ import annotations

import typing as t

from .manifest import Manifest
from .runner import Result

_STEP_WIDTH = 40
_REQUEST_WIDTH = 56
_REASON_WIDTH = 100


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def format_table(results: t.Sequence[Result]) -> str:
    """One line per step: number, name, request, expected and answered status, PASS/FAIL, first reason;
    then every difference of each failed step in full, and the summary line."""
    rows = [["#", "step", "request", "expect", "got", "result", "reason"]]
    for n, r in enumerate(results, 1):
        expected = "|".join(str(s) for s in r.step.expect.status)
        reason = _cut(r.differences[0], _REASON_WIDTH) if r.differences else ""
        rows.append([str(n), _cut(r.step.name, _STEP_WIDTH), _cut(f"{r.step.method} {r.path}", _REQUEST_WIDTH),
                     expected, "-" if r.status is None else str(r.status), "PASS" if r.passed else "FAIL", reason])
    lines = _columns(rows)
    failed = [r for r in results if not r.passed]
    if failed:
        lines += ["", "Failures:"]
        for r in failed:
            lines.append(f"  {r.step.name}: {r.step.title}")
            lines += [f"    - {difference}" for difference in r.differences]
    return "\n".join([*lines, "", summary(results)])


def summary(results: t.Sequence[Result]) -> str:
    failed = sum(not r.passed for r in results)
    if not failed:
        return f"{len(results)} steps: all passed"
    return f"{len(results)} steps: {len(results) - failed} passed, {failed} failed"


def format_steps(manifest: Manifest) -> str:
    """The steps as written, with what each expects: the examples' index, without a server."""
    lines = [manifest.title, ""] if manifest.title else []
    for n, step in enumerate(manifest.steps, 1):
        body = f"  < {step.body_file.relative_to(manifest.directory)}" if step.body_file else ""
        status = " or ".join(str(s) for s in step.expect.status)
        lines.append(f"{n:>3}  {step.name}: {step.title}")
        lines.append(f"     {step.method} {step.path}{body}  → {status}")
        lines += [f"       {message!r}" for message in step.expect.messages]
    return "\n".join(lines)
