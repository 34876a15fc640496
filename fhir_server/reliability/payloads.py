"""Valid request bodies, each new: a PractitionerRole create is refused as a duplicate when its
business key (practitioner, organisation, facility, role code) holds an overlapping period, so every
role made here has a role code and a one-day period (ended, with a status reason) no other has."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import threading
import typing as t

from ..config import PROJECT_DIR, Settings
from ..definitions import load_definitions
from ..terminology import ROLE_CODES

CREATE_EXAMPLE: dict[str, t.Any] = json.loads((PROJECT_DIR / "tests" / "data" / "create-example.json").read_text())
EXAMPLES = PROJECT_DIR / "examples"
PLAIN_EXAMPLE: dict[str, t.Any] = {**json.loads((EXAMPLES / "plain-json" / "create-full.json").read_text()),
                                   "practitionerId": "99ZZZS"}
_FIRST_DAY = dt.date(1950, 1, 1)
# An ended period needs a status reason; "other" still holds the period, as a duplicate must see it.
_STATUS_REASON = json.loads((EXAMPLES / "create" / "ended-with-status-reason.json").read_text())["extension"]


def _codings() -> list[dict[str, t.Any]]:
    return [c.coding() for c in load_definitions(Settings().profiles_dir).value_sets[ROLE_CODES].concepts]


class Roles:
    """Endless distinct valid creates of the IG's example; safe to share between threads."""

    def __init__(self) -> None:
        self._codings = _codings()
        self._count = itertools.count()
        self._lock = threading.Lock()

    def next(self, base: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        with self._lock:
            n = next(self._count)
        day, which = divmod(n, len(self._codings))
        start = _FIRST_DAY + dt.timedelta(days=2 * day)  # one day apart: "one starts the day the other ends" is no overlap
        role = copy.deepcopy(base or CREATE_EXAMPLE)
        coding = self._codings[which]
        role["code"] = [{"coding": [coding], "text": coding["display"]}]
        role["extension"] = [*role.get("extension", []), *_STATUS_REASON]
        role["period"] = {"start": start.isoformat(), "end": (start + dt.timedelta(days=1)).isoformat()}
        return role


def example_creates() -> list[dict[str, t.Any]]:
    """The IG's create example and every valid create of ``examples/create/`` (whose references are
    the records of ``examples/reference-data/``)."""
    return [CREATE_EXAMPLE, *(json.loads(p.read_text()) for p in sorted((EXAMPLES / "create").glob("*.json")))]


def reference_records() -> list[dict[str, t.Any]]:
    return [json.loads(p.read_text()) for p in sorted((EXAMPLES / "reference-data").glob("*.json"))]
