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


def check_targets(results: t.Sequence[Result], connections: int) -> list[Target]:
    by_name = {r.name: r for r in results if r.failure is None and r.requests}
    create, store = by_name.get(CREATE), by_name.get(BASELINE_A)
    texts = ("create throughput >= 60% of baseline A's", f"create p99 < 25 ms at {connections} connections",
             "app CPU per create <= 2x baseline A's")
    if create is None or store is None:
        return [Target(text, None, "not measured") for text in texts]
    throughput = create.per_second / store.per_second if store.per_second else 0.0
    cpu = create.app_cpu_ms / store.app_cpu_ms if store.app_cpu_ms else float("inf")
    return [
        Target(texts[0], throughput >= 0.6, f"{create.per_second:.0f} vs {store.per_second:.0f} req/s = {throughput:.0%}"),
        Target(texts[1], create.p99_ms < 25, f"p99 {create.p99_ms:.1f} ms"),
        Target(texts[2], cpu <= 2, f"{create.app_cpu_ms:.2f} vs {store.app_cpu_ms:.2f} ms = {cpu:.1f}x"),
    ]


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
    lines.append("")
    for target in targets:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target.met]
        lines.append(f"{verdict:<12} {target.text}: {target.figures}")
    return "\n".join(lines)


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
