"""One benchmark run: start the database, the server and the baseline app, make the Practitioners the
creates need, then run every scenario (a warm-up, then the measured time) against the same processes,
so that the ratios between scenarios hold. With ``--stored`` counts, the scenarios run once per count,
smallest first, after roles are loaded until that many are stored (:mod:`.stored`)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import platform
import tempfile
import typing as t
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import psutil
import requests

from ..auth.assertion import Caller, ClientCredentials
from ..config import Settings
from ..definitions import load_definitions
from ..outcome import StoreUnavailable
from ..service import Context
from ..store import Store
from ..version import VERSION
from . import commands
from .load import Request, drive, open_session
from .processes import Meter, gunicorn_workers, process_tree
from .report import Result
from .scenarios import EXAMPLE_REFERENCES, SCENARIOS, Scenario, Workload, practitioner_ids, reference_data, role_codes
from .servers import DATABASE, Running, baseline_server, database, fhir_server
from .stored import ACCESS, StoredRoles

#: Far above what a run can send: the limit never answers 429, yet every request still makes its
#: counter's round trip to the database, as in production.
RATE_LIMIT = "100000000/hour"
#: More creates a second than the server can store, to size the supply of distinct roles.
MAX_CREATES_PER_SECOND = 1000
#: How long a bulk write of loaded roles may take: a batch of them can take seconds on a database grown
#: large (SecantusDB), longer than a request may.
LOADING_TIMEOUT_MS = 60_000
#: The collections whose size is reported after roles are loaded.
SIZED = ("practitioner_roles", "practitioner_role_versions", "role_keys")
#: The CPNs of the practitioners of loaded roles (``practitioner_ids``), apart from the creates'.
STORED_MARK = "BNS"
#: How often a scenario checks that its access token is not about to expire (TOKEN_SECONDS is 5 min).
TOKEN_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class Options:
    seconds: float = 10.0
    warmup: float = 2.0
    connections: int = 16
    workers: int = 2
    #: Run every scenario once per count, with that many roles stored first; none: as the run leaves them.
    stored: tuple[int, ...] = ()

    def server_env(self) -> dict[str, str]:
        return {"WEB_CONCURRENCY": str(self.workers), "RATE_LIMIT": RATE_LIMIT, "API_KEY_CACHE_SECONDS": "10"}


def run(options: Options, echo: t.Callable[[str], None] = print) -> tuple[list[Result], dict[str, t.Any]]:
    """Every scenario's result, and what the run was (options, settings, machine) for the report."""
    about: dict[str, t.Any] = {"options": asdict(options), "server_env": options.server_env(), "cpus": psutil.cpu_count(),
             "python": platform.python_version(), "fhir_server": VERSION}
    with tempfile.TemporaryDirectory(prefix="fhir-bench-") as tmp:
        folder = Path(tmp)
        echo(f"Starting the database, the server and the baseline app ({options.workers} gunicorn workers each) ...")
        with database(folder) as db, fhir_server(db.uri, folder, options.server_env()) as server, \
                baseline_server(db.uri, folder, options.server_env()) as baseline:
            assert db.process is not None
            # The development client `serve` registered, with every scope; its token is the clients' own
            # cost, so it is fetched outside the measured time (and again only shortly before it expires).
            caller = Caller.of_client(server.base_url, ClientCredentials.load(folder / "dev-client.json"))
            workload = Workload(server.base_url, baseline.base_url, {
                **caller.headers(), "userid": "99ZZZS", "User-Agent": f"fhir-server-bench/{VERSION}",
                "Content-Type": "application/fhir+json"}, caller)
            apps = {"server": server, "baseline": baseline}
            settings = Settings()
            store = Store(db.uri, DATABASE, LOADING_TIMEOUT_MS)
            try:
                ctx = Context(store, load_definitions(settings.profiles_dir), limits=settings.limits, access=ACCESS)
                stored = StoredRoles(ctx, practitioner_ids(_stored_practitioners(options), STORED_MARK), role_codes())
                results, loads = asyncio.run(_run_rounds(options, workload, apps, Meter(process_tree(db.process.pid)), stored, echo))
            finally:
                store.close()
    # A search's cost grows with the roles of its practitioner: say how many there were (per round).
    about.update(practitioners=len(workload.practitioners), roles_created=len(workload.roles), stored_loads=loads)
    return results, about


def _stored_practitioners(options: Options) -> int:
    return math.ceil(max(options.stored, default=0) / len(role_codes()))


async def _run_rounds(options: Options, workload: Workload, apps: dict[str, Running], db: Meter, stored: StoredRoles,
                      echo: t.Callable[[str], None]) -> tuple[list[Result], list[dict[str, t.Any]]]:
    """Every scenario once per ``options.stored`` count (once if none), and how each load went."""
    results: list[Result] = []
    loads: list[dict[str, t.Any]] = []
    async with open_session(options.connections) as session:
        rounds = await _make_reference_data(workload, session, options, max(1, len(options.stored)))
        if options.stored:
            stored_cpns = practitioner_ids(_stored_practitioners(options), STORED_MARK)
            await _post_all(session, workload.server_url, reference_data(stored_cpns, workload.headers)[len(EXAMPLE_REFERENCES):])
        asks: list[int | None] = [*sorted(options.stored)] or [None]
        for asked, practitioners in zip(asks, rounds, strict=True):
            workload.practitioners, workload.create_keys = practitioners, None
            if asked is not None:
                echo(f"Loading roles until {asked} are stored ...")
                loaded = await asyncio.to_thread(stored.fill_to, asked)
                sizes = await asyncio.to_thread(stored.ctx.store.sizes, *SIZED)
                loads.append({"stored": asked, "loaded": loaded.roles, "seconds": loaded.seconds, "sizes": sizes})
                echo(f"  loaded {loaded.roles} roles in {loaded.seconds:.1f} s; "
                     + ", ".join(f"{name} {s['documents']} ({s['data_mb']} MB, indexes {s['index_mb']} MB)" for name, s in sizes.items()))
            results += await _run_scenarios(options, workload, apps, db, stored, asked, session, echo)
    return results, loads


async def _run_scenarios(options: Options, workload: Workload, apps: dict[str, Running], db: Meter, stored: StoredRoles,
                         asked: int | None, session: aiohttp.ClientSession, echo: t.Callable[[str], None]) -> list[Result]:
    results = []
    for scenario in SCENARIOS:
        count: int | None = None
        try:
            count = await asyncio.to_thread(stored.count)
            result = await _measure(scenario, options, workload, session, apps[scenario.app], db)
        except (TimeoutError, RuntimeError, StoreUnavailable, aiohttp.ClientError, requests.RequestException) as e:
            result = Result(scenario.name, scenario.request, failure=f"{type(e).__name__}: {e}")
        result = dataclasses.replace(result, stored_roles=count, stored_asked=asked)
        figures = f"{result.per_second:.0f} req/s, p99 {result.p99_ms:.1f} ms, {result.errors} errors"
        echo(f"  {scenario.name} ({count} roles stored): " + (f"could not run ({result.failure})" if result.failure else figures))
        results.append(result)
    return results


async def _make_reference_data(workload: Workload, session: aiohttp.ClientSession, options: Options,
                               rounds: int) -> list[list[str]]:
    """The example's organisation and facility, and enough Practitioners that every create of the run
    is a role of its own: for each round, practitioners of its own, so that every round's searches
    read as many roles of a practitioner (the roles of one round's creates)."""
    each = max(2, math.ceil(MAX_CREATES_PER_SECOND * (options.warmup + options.seconds) / len(role_codes())))
    cpns = practitioner_ids(each * rounds)
    await _post_all(session, workload.server_url, reference_data(cpns, workload.headers))
    return [cpns[i * each:(i + 1) * each] for i in range(rounds)]


async def _post_all(session: aiohttp.ClientSession, server_url: str, creates: list[Request]) -> None:
    for request in creates:
        async with session.request(request.method, server_url + request.path, data=request.body,
                                   headers=request.headers) as response:
            if response.status != 201:
                raise RuntimeError(f"{request.method} {request.path}: {response.status} {await response.text()}")


async def _measure(scenario: Scenario, options: Options, workload: Workload, session: aiohttp.ClientSession,
                   app: Running, db: Meter) -> Result:
    await _renew_token(workload)
    connections = await scenario.connect(workload, session, options.connections)
    base_url = app.base_url
    renewing = asyncio.create_task(_keep_token(workload))
    try:
        await drive(session, base_url, connections, options.warmup, scenario.expected)
        sent_before = await commands.scrape(session, base_url)
        workers, client = Meter(gunicorn_workers(app.pid)), psutil.Process()
        workers.start()
        db.start()
        client_cpu = sum(client.cpu_times()[:2])
        tally = await drive(session, base_url, connections, options.seconds, scenario.expected)
        client_cpu = sum(client.cpu_times()[:2]) - client_cpu
        app_usage, db_usage = workers.stop(), db.stop()
        sent, by_name = commands.per_request(sent_before, await commands.scrape(session, base_url), tally.requests)
    finally:
        renewing.cancel()
    result = Result.measured(scenario.name, scenario.request, tally, app_usage, db_usage, client_cpu)
    return dataclasses.replace(result, db_commands=sent, db_commands_by_name=by_name)


async def _renew_token(workload: Workload) -> None:
    """Every request shares ``workload.headers``: a new token there is sent by the next request."""
    if workload.caller is not None:
        workload.headers.update(await asyncio.to_thread(workload.caller.headers))


async def _keep_token(workload: Workload) -> None:
    """A scenario longer than a token's life (BENCH_SECONDS past 4.5 minutes) renews it as it goes."""
    while True:
        await asyncio.sleep(TOKEN_CHECK_SECONDS)
        await _renew_token(workload)
