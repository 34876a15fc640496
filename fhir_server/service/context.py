"""What an operation needs from its surroundings, passed in so that services know no Flask."""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ..auth import NO_ACCESS, Access
from ..definitions import Definitions
from ..store import Store
from ..validation.json_body import Limits

# HPI dates are New Zealand dates: a role ending "2025-03-01" is current until that day ends there.
NZ = ZoneInfo("Pacific/Auckland")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Context:
    store: Store
    definitions: Definitions
    clock: t.Callable[[], dt.datetime] = field(default=_utc_now)
    limits: Limits = field(default_factory=Limits)
    # Who is asking: a request's caller (see http.incoming.context), or the server's own commands.
    # Nobody by default, so that code not told who asks may do nothing.
    access: Access = NO_ACCESS

    def now(self) -> dt.datetime:
        return self.clock()

    def today(self) -> str:
        return self.now().astimezone(NZ).date().isoformat()
