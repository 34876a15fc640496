"""CPU time and peak memory of the processes under test: a gunicorn's workers, the database.

CPU comes from psutil's ``cpu_times`` (user + system) taken at both ends of a scenario. The peak is
Linux's resident high-water mark (``VmHWM``), reset at the start of a scenario through
``/proc/PID/clear_refs`` so that each scenario reports its own; where the reset is refused the mark
counts from the process's start, and the result says so.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

import psutil

from .. import processes

#: The processes of a group, read again at each end (a worker may have been replaced meanwhile).
Finder = t.Callable[[], list[psutil.Process]]


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    #: The sum of each process's peak resident memory (an upper bound of the group's peak).
    peak_rss_bytes: int
    #: False when the peak could not be reset and counts from the processes' start.
    peak_of_scenario: bool


def gunicorn_workers(root_pid: int) -> Finder:
    """The workers under ``root_pid`` (a gunicorn master, or ``serve``, which starts one)."""
    return lambda: processes.gunicorn_workers(root_pid)


def process_tree(root_pid: int) -> Finder:
    """A process and all its descendants (the database and any helper it starts)."""
    return lambda: [psutil.Process(root_pid), *processes.descendants(root_pid)]


def _cpu(p: psutil.Process) -> float:
    times = p.cpu_times()
    return float(times.user + times.system)


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS (Linux 4.0+)
        return True
    except OSError:
        return False


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Meter:
    """Usage of one group of processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, find: Finder) -> None:
        self._find = find
        self._cpu_at_start: dict[int, float] = {}
        self._reset = False

    def start(self) -> None:
        processes = self._find()
        self._reset = all([_reset_peak(p.pid) for p in processes])
        self._cpu_at_start = {p.pid: _cpu(p) for p in processes}

    def stop(self) -> Usage:
        cpu = peak = 0.0
        for p in self._find():
            # A process that started meanwhile counts from zero.
            cpu += _cpu(p) - self._cpu_at_start.get(p.pid, 0.0)
            peak += _peak_rss(p.pid)
        return Usage(cpu, int(peak), self._reset)
