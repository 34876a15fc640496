"""The results of a run: one per scenario, the targets, a table for people and JSON for later."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .load import Tally, percentile
from .processes import Usage

MB = 1024 * 1024
BASELINE_A = "baseline A: store"
CREATE = "create"


@dataclass(frozen=True)
class Result:
    """One scenario's figures; ``failure`` says why it could not run (then the figures are zero)."""

    name: str
    request: str
    requests: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    #: CPU milliseconds per request: the app's workers (summed), the database, this load driver.
    app_cpu_ms: float = 0.0
    db_cpu_ms: float = 0.0
    client_cpu_ms: float = 0.0
    app_peak_mb: float = 0.0
    db_peak_mb: float = 0.0
    #: False if the peaks count from the processes' start rather than the scenario's.
    peak_of_scenario: bool = True
    #: Database commands per request, counted at the app's /metrics (connection handshakes apart:
    #: see .commands), and every command's per request by name, handshakes included.
    db_commands: float | None = None
    db_commands_by_name: dict[str, float] = field(default_factory=dict)
    #: Roles stored when the scenario started, and the count ``--stored`` asked for (None: not asked).
    stored_roles: int | None = None
    stored_asked: int | None = None
    failure: str | None = None

    @classmethod
    def measured(cls, name: str, request: str, tally: Tally, app: Usage, db: Usage, client_cpu_seconds: float) -> Result:
        n = tally.requests or 1
        ms = [s * 1000 for s in tally.latencies]
        p50, p90, p99, top = (round(percentile(ms, q), 2) for q in (50, 90, 99, 100))
        return cls(name, request, requests=tally.requests, seconds=round(tally.seconds, 3),
                   per_second=round(tally.per_second, 1), p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=top,
                   errors=tally.errors, statuses=dict(tally.statuses), error_samples=tally.error_samples,
                   app_cpu_ms=round(app.cpu_seconds * 1000 / n, 3), db_cpu_ms=round(db.cpu_seconds * 1000 / n, 3),
                   client_cpu_ms=round(client_cpu_seconds * 1000 / n, 3),
                   app_peak_mb=round(app.peak_rss_bytes / MB, 1), db_peak_mb=round(db.peak_rss_bytes / MB, 1),
                   peak_of_scenario=app.peak_of_scenario and db.peak_of_scenario)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.errors == 0


@dataclass(frozen=True)
class Target:
    text: str
    met: bool | None  # None: a scenario it needs did not run
    figures: str


BASELINE_C = "baseline C: find"
#: The most database commands a request of each scenario may make (connection handshakes apart).
COMMAND_BUDGET = {"create": 3, "read": 1, "vread": 1, "search + _include": 3, "update": 3}
#: The scenarios whose cost should not grow with the roles stored, and by how much it may.
FLAT = ("create", "read", "search + _include", "history page", "update")
FLAT_RATIO = 1.2


def check_targets(results: t.Sequence[Result], connections: int) -> list[Target]:
    """The targets within one run of the scenarios: each request's commands, and each scenario
    against the bare app's route that does its one database step."""
    by_name = {r.name: r for r in results if r.failure is None and r.requests}
    targets = []
    for name, budget in COMMAND_BUDGET.items():
        r = by_name.get(name)
        count = r.db_commands if r is not None else None
        # Counts taken in blocks (rate-limit windows, role ids) add a few hundredths: within 0.05 is met.
        targets.append(Target(f"{name}: at most {budget} DB commands per request", None if count is None else count < budget + 0.05,
                              "not measured" if count is None else f"{count:.2f}"))
    for name, base, share in ((CREATE, BASELINE_A, 0.35), ("read", BASELINE_C, 0.6)):
        short = base.split(":")[0]
        texts = f"{name} throughput >= {share:.0%} of {short}'s", f"app CPU per {name} <= 2x {short}'s"
        r, b = by_name.get(name), by_name.get(base)
        if r is None or b is None or not b.per_second:
            targets += [Target(text, None, "not measured") for text in texts]
            continue
        ratio, cpu = r.per_second / b.per_second, r.app_cpu_ms / b.app_cpu_ms if b.app_cpu_ms else float("inf")
        targets.append(Target(texts[0], ratio >= share, f"{r.per_second:.0f} vs {b.per_second:.0f} req/s = {ratio:.0%}"))
        targets.append(Target(texts[1], cpu <= 2, f"{r.app_cpu_ms:.2f} vs {b.app_cpu_ms:.2f} ms = {cpu:.1f}x"))
    create = by_name.get(CREATE)
    targets.append(Target(f"create p99 < 50 ms at {connections} connections", None if create is None else create.p99_ms < 50,
                          "not measured" if create is None else f"p99 {create.p99_ms:.1f} ms"))
    return targets


def flat_targets(small: t.Sequence[Result], large: t.Sequence[Result]) -> list[Target]:
    """Each scenario's cost per request (app and database CPU, median latency) with many roles stored
    against with few: within :data:`FLAT_RATIO`."""
    before = {r.name: r for r in small if r.ok and r.requests}
    targets = []
    for r in large:
        b = before.get(r.name)
        if r.name not in FLAT:
            continue
        text = f"{r.name}: cost at {r.stored_roles} stored roles <= {FLAT_RATIO}x that at {b.stored_roles if b else '?'}"
        if b is None or not r.ok or not r.requests:
            targets.append(Target(text, None, "not measured"))
            continue
        cpu = (r.app_cpu_ms + r.db_cpu_ms) / ((b.app_cpu_ms + b.db_cpu_ms) or float("inf"))
        latency = r.p50_ms / (b.p50_ms or float("inf"))
        targets.append(Target(text, cpu <= FLAT_RATIO and latency <= FLAT_RATIO,
                              f"CPU {b.app_cpu_ms + b.db_cpu_ms:.2f} -> {r.app_cpu_ms + r.db_cpu_ms:.2f} ms = {cpu:.2f}x, "
                              f"p50 {b.p50_ms:.1f} -> {r.p50_ms:.1f} ms = {latency:.2f}x"))
    return targets


COLUMNS = (("scenario", 20, "name", "s"), ("stored", 7, "stored_roles", "d"), ("req/s", 8, "per_second", ".0f"),
           ("p50 ms", 7, "p50_ms", ".1f"),
           ("p90 ms", 7, "p90_ms", ".1f"), ("p99 ms", 7, "p99_ms", ".1f"), ("errors", 6, "errors", "d"),
           ("app CPU ms/req", 14, "app_cpu_ms", ".2f"), ("DB CPU ms/req", 13, "db_cpu_ms", ".2f"),
           ("DB cmds/req", 11, "db_commands", ".2f"),
           ("app peak MB", 11, "app_peak_mb", ".0f"), ("DB peak MB", 10, "db_peak_mb", ".0f"))


def format_table(results: t.Sequence[Result], targets: t.Sequence[Target]) -> str:
    def row(cells: t.Iterable[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, (_, w, _, _)) in enumerate(zip(cells, COLUMNS, strict=True)))

    lines = [row(title for title, *_ in COLUMNS)]
    for r in results:
        if r.failure:
            lines.append(f"{r.name:<20}  could not run: {r.failure}")
            continue
        lines.append(row("-" if getattr(r, attr) is None else format(getattr(r, attr), spec) for _, _, attr, spec in COLUMNS))
        lines.extend(f"{'':<20}  error: {sample}" for sample in r.error_samples)
    if not all(r.peak_of_scenario for r in results):
        lines.append("(peak memory counts from the processes' start: the kernel refused to reset it)")
    lines.append("(DB cmds/req: counted at the app's /metrics, connection handshakes and authentication apart)")
    lines.extend(f"{r.name:<20}  {', '.join(f'{name} {count:.2f}' for name, count in r.db_commands_by_name.items())}"
                 for r in results if r.db_commands_by_name)
    return "\n".join([*lines, "", format_targets(targets)])


def format_targets(targets: t.Sequence[Target]) -> str:
    verdicts = {True: "met", False: "MISSED", None: "not measured"}
    return "\n".join(f"{verdicts[target.met]:<12} {target.text}: {target.figures}" for target in targets)


def write_json(document: dict[str, t.Any], folder: Path, started: dt.datetime) -> Path:
    """``folder/latest.json`` and a copy named by the start time; returns the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n"
    dated = folder / f"bench-{started:%Y%m%dT%H%M%S}.json"
    dated.write_text(text)
    (folder / "latest.json").write_text(text)
    return dated


def document(results: t.Sequence[Result], targets: t.Sequence[Target], about: dict[str, t.Any]) -> dict[str, t.Any]:
    return {**about, "scenarios": [asdict(r) for r in results], "targets": [asdict(x) for x in targets]}
