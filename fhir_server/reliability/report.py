"""What a scenario tried, what was lost, and which promises broke: printed as it ends, and as one
table at the end of the run."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from .client import Answer


@dataclass
class Result:
    name: str
    tried: str = ""
    lost: str = "nothing"
    server_errors: int = 0  # 5xx answers that no promise allows (the 503s of an outage are allowed)
    broken: list[str] = field(default_factory=list)  # promises not kept; any makes the run fail
    notes: list[str] = field(default_factory=list)  # what happened and is explained
    seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return not self.broken and self.server_errors == 0

    def finish(self) -> Result:
        self.seconds = time.monotonic() - self.started
        return self

    def print(self) -> None:
        print(f"\n== {self.name}: {'kept' if self.ok else 'BROKEN'} ({self.seconds:.1f} s)")
        print(f"   tried: {self.tried}")
        print(f"   lost:  {self.lost}")
        print(f"   5xx:   {self.server_errors}")
        for note in self.notes:
            print(f"   note:  {note}")
        for broken in self.broken:
            print(f"   BROKEN: {broken}")


def statuses(answers: list[Answer]) -> str:
    """``201×40, 422×3, connection×1``, most frequent first."""
    return ", ".join(f"{k}×{n}" for k, n in Counter(a.describe() for a in answers).most_common()) or "none"


def table(results: list[Result]) -> str:
    lines = [f"{'scenario':<28} {'result':<7} {'5xx':>4} {'time':>7}  lost"]
    for r in results:
        lines.append(f"{r.name:<28} {'kept' if r.ok else 'BROKEN':<7} {r.server_errors:>4} {r.seconds:>6.1f}s  {r.lost}")
    return "\n".join(lines)
