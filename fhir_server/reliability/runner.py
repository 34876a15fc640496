"""Run the scenarios against one throwaway database and server, in an order where each leaves the
next a working system: the ones that kill processes come last, the database kill the very last."""

from __future__ import annotations

import typing as t

from . import bad_inputs, database_kill, db_faults, fuzz, nested_bundles, parallel_creates, slow_clients, worker_kill
from .client import Client
from .harness import Harness
from .payloads import Roles
from .processes import lab
from .report import Result, table
from .stored import Stored

Scenario = t.Callable[[Harness, bool], Result]
# name → (in the quick run?, scenario)
SCENARIOS: dict[str, tuple[bool, Scenario]] = {
    "parallel-creates": (True, lambda h, quick: parallel_creates.run(h)),
    "bad-inputs": (True, lambda h, quick: bad_inputs.run(h)),
    "fuzz": (True, lambda h, quick: fuzz.run(h, quick)),
    "database-faults": (True, lambda h, quick: db_faults.run(h)),
    "nested-bundles": (True, lambda h, quick: nested_bundles.run(h)),
    "slow-clients": (False, lambda h, quick: slow_clients.run(h)),
    "worker-kill": (False, lambda h, quick: worker_kill.run(h)),
    "database-kill": (True, lambda h, quick: database_kill.run(h)),  # acknowledged means on disk
}


def run_scenarios(names: t.Sequence[str], quick: bool) -> list[Result]:
    results = []
    with lab() as running:
        stored = Stored(running.database.uri)
        h = Harness(running, Client(running.server.base_url, running.server.caller()), Roles(), stored)
        print(f"server {running.server.base_url}, workers {running.server.worker_pids()}, database {running.database.uri}")
        try:
            for name in names:
                try:
                    result = SCENARIOS[name][1](h, quick)
                except Exception as e:  # one scenario's crash is reported; the others still run
                    result = Result(name, tried="(did not finish)", broken=[f"the scenario itself failed: {e!r}"]).finish()
                result.print()
                results.append(result)
                running.keep = running.keep or not result.ok
        finally:
            stored.close()
    print("\n" + table(results))
    return results


def chosen(quick: bool, only: t.Sequence[str]) -> list[str]:
    return list(only) if only else [name for name, (in_quick, _) in SCENARIOS.items() if in_quick or not quick]
