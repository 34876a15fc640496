"""``--stored N``: roles loaded before the scenarios, quickly, as the server would have stored them.

Each role is the create example with a (practitioner, role code) pair of its own, built by the
create's own steps: the body is parsed and checked (structure, profiles, references, as a create
checks it) once per practitioner, its roles differing only by a code of the role code value set; each
is then completed as a create completes it (id, identifier, meta, active, live references). They go in
through the bulk writes of ``fhir-server import`` (:class:`..store.backup.BackupStore`), each role with
its search fields, identifier keys, business key, its version 1 and the audit record a create gives
it. The reservation of each held period goes in one bulk write a batch, as a new key's document; a
key already stored is reserved one by one, as a create reserves it. The id counter is moved past the
ids first, so the server never issues one again.
"""

from __future__ import annotations

import itertools
import time
import typing as t
from dataclasses import dataclass

from .. import audit
from ..auth import Access
from ..identifiers import format_role_id
from ..service import Context
from ..service.practitioner_role import _check_content, _check_structure, _complete, business_key, holds_period, parse
from ..service.search import identifier_keys, search_fields
from ..store.backup import BATCH
from ..store.errors import translate_errors
from ..store.roles import held_period
from .scenarios import role

ACCESS = Access.system("fhir-server bench")


@dataclass(frozen=True)
class Loaded:
    roles: int
    seconds: float


class StoredRoles:
    """Roles of ``practitioners`` (each must exist) × ``codes``, in that order, loaded as asked."""

    def __init__(self, ctx: Context, practitioners: list[str], codes: list[dict[str, t.Any]]) -> None:
        self.ctx, self.codes = ctx, codes
        self.keys = ((cpn, code) for cpn in practitioners for code in codes)
        self.checked: dict[str, tuple[dict[str, t.Any], t.Any]] = {}

    def count(self) -> int:
        """Every role stored, by whoever stored it: the collection's own count (counting the documents
        would read them all, longer than a command may take at 100,000 roles).

        :raises StoreUnavailable: the database did not answer.
        """
        return int(translate_errors(self.ctx.store.db["practitioner_roles"].estimated_document_count)())

    def fill_to(self, total: int) -> Loaded:
        """Load roles until ``total`` are stored (none if as many are already)."""
        started = time.perf_counter()
        wanted = max(0, total - self.count())
        loaded = 0
        while loaded < wanted:
            loaded += self._load(min(BATCH, wanted - loaded))
        return Loaded(loaded, round(time.perf_counter() - started, 1))

    def _load(self, n: int) -> int:
        ctx = self.ctx
        pairs = list(itertools.islice(self.keys, n))
        if len(pairs) < n:
            raise RuntimeError("more roles asked than the stored practitioners and role codes make")
        first = ctx.store.role_ids.highest_issued() + 1
        # Before any is stored, so the server never issues these; it is idle while roles load (between scenarios).
        ctx.store.role_ids.skip_past(first + n - 1)
        rows = []
        for number, (cpn, code) in enumerate(pairs, first):
            doc, resolved = self._checked(cpn)
            resource = _complete({**doc, "code": [code]}, format_role_id(number), resolved, ctx)
            key = business_key(resource, ctx)
            rows.append((resource, key, ctx.store.roles.new_token(resource["id"]) if holds_period(resource) else None))
        ctx.store.backup.insert_new_roles([(r, key, held, search_fields(r), identifier_keys(r), audit.record(r, ctx.access, audit.CREATE))
                                           for r, key, held in rows])
        at = ctx.now()
        holding = [(r, key, held) for r, key, held in rows if held is not None]
        taken = ctx.store.backup.insert_new_reservations([(key, held_period(r.get("period"), r["id"], held, at))
                                                          for r, key, held in holding])
        # A key someone stored already: reserved as a create reserves it, which tells a clash.
        for r, key, held in (holding[k] for k in sorted(taken)):
            if not ctx.store.roles.reserve(key, r.get("period"), r["id"], held, at):
                raise RuntimeError("a stored role's period clashed with another's: the bench's roles are not distinct")
        return n

    def _checked(self, cpn: str) -> tuple[dict[str, t.Any], t.Any]:
        """The role body of ``cpn``, parsed and checked as a create checks it, and its references resolved."""
        if cpn not in self.checked:
            doc = parse(role(cpn, self.codes[0]))
            _check_structure(doc, self.ctx)
            self.checked[cpn] = doc, _check_content(doc, self.ctx)
        return self.checked[cpn]
