"""Reliability scenarios (``make reliability``): the server's promises under parallel duplicates,
a database killed under load, workers killed under load, bad inputs and fuzzing. Each scenario is
bounded in time and says what it tried, what was lost and which promise broke."""

from __future__ import annotations

from .runner import SCENARIOS, run_scenarios

__all__ = ["SCENARIOS", "run_scenarios"]
