"""Tools around the server: profile snapshots, the conformance runner and the benchmark."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import signal
import sys
from pathlib import Path

import click

from ..auth.assertion import Caller
from ..config import PROJECT_DIR, Settings
from ..conformance import (
    ManifestError,
    ServerDidNotStart,
    Target,
    format_steps,
    format_table,
    load_manifest,
    run,
    throwaway_server,
)
from ..outcome import StoreUnavailable
from ..snapshot import generate_snapshot
from . import common
from .common import DEV_CLIENT_FILE


@click.group()
def profiles() -> None:
    """Maintain the profiles' StructureDefinitions.

    They are the StructureDefinition-*.json files of the profiles folder, PROFILES_DIR."""


@profiles.command("snapshot")
def write_snapshots() -> None:
    """Regenerate the snapshots from the differentials.

    Rewrites every StructureDefinition's snapshot from its differential, then checks the folder loads."""
    folder = Settings().profiles_dir
    files = {p: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("StructureDefinition-*.json"))}
    by_url = {sd["url"]: sd for sd in files.values()}
    for path, sd in files.items():
        try:
            elements = generate_snapshot(sd, by_url)
        except ValueError as e:
            raise click.ClickException(f"{path}: {e}") from None
        rest = {k: v for k, v in sd.items() if k not in ("snapshot", "differential")}
        path.write_text(json.dumps({**rest, "snapshot": {"element": elements}, "differential": sd["differential"]},
                                   indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        click.echo(f"{path.name}: {len(elements)} elements")
    common.definitions(Settings())
    click.echo("The profiles load.")


@click.command()
@click.option("--base-url", show_default="http://HOST:PORT, as `make run` serves", help="The server to check.")
@click.option("--token", help="An access token to send (with --api-key, the key of the token's client); it is not renewed.")
@click.option("--api-key", help="The x-api-key to send with --token.")
@click.option("--client-file", type=click.Path(dir_okay=False, path_type=Path),
              show_default="DATA_DIR/dev-client.json, which `make run` writes",
              help="Client credentials (client_id, api_key, private JWK) to ask the server's token endpoint for tokens with.")
@click.option("--userid", default="99ZZZS", show_default=True, help="The userid header to send.")
@click.option("--examples", "examples_dir", default=PROJECT_DIR / "examples", show_default="the project's examples/",
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="The folder holding manifest.json.")
@click.option("--serve", is_flag=True, help="Start a throwaway server (embedded database in a temporary DATA_DIR), check it, stop it.")
@click.option("--list", "list_only", is_flag=True, help="Print the steps and what each expects; send nothing.")
def conformance(base_url: str | None, token: str | None, api_key: str | None, client_file: Path | None, userid: str,
                examples_dir: Path, serve: bool, list_only: bool) -> None:
    """Check a server against the example requests.

    Sends the steps of examples/manifest.json, compares each answer with what the step expects and
    prints a pass/fail table; exit status 1 if any step fails.

    Every FHIR request carries an access token and the x-api-key of its client: either --token with
    --api-key, or client credentials (--client-file), with which a new token is fetched before the last
    one expires. With neither, the development client of `make run` is used.

    \b
    For example:
      fhir-server conformance          against `make run`
      fhir-server conformance --serve  against a throwaway server
      fhir-server conformance --base-url URL --client-file FILE
    """
    try:
        manifest = load_manifest(examples_dir)
    except ManifestError as e:
        raise click.ClickException("\n  ".join([f"{examples_dir / 'manifest.json'} cannot be run:", *e.problems])) from None
    if list_only:
        click.echo(format_steps(manifest))
        return
    if bool(token) != bool(api_key):
        raise click.UsageError("--token and --api-key go together: the token must be of the key's client")
    if token and client_file:
        raise click.UsageError("give either --token with --api-key, or --client-file")
    if serve:
        if base_url or token or client_file:
            raise click.UsageError("--serve checks a server of its own: leave out --base-url, --token, --api-key and --client-file")
        try:
            with throwaway_server() as server:
                click.echo(f"Started a throwaway server on {server.base_url} (data in {server.data_dir})")
                caller = Caller.of_client(server.base_url, common.client_credentials(server.data_dir / DEV_CLIENT_FILE))
                results = run(manifest, Target(server.base_url, caller, userid))
        except ServerDidNotStart as e:
            raise click.ClickException(str(e)) from None
    else:
        settings = Settings()
        base_url = base_url or f"http://{settings.host}:{settings.port}"
        if token and api_key:
            caller = Caller.fixed(api_key, token)
        else:
            caller = Caller.of_client(base_url, common.client_credentials(client_file or settings.data_dir / DEV_CLIENT_FILE))
        results = run(manifest, Target(base_url, caller, userid))
    click.echo(format_table(results))
    sys.exit(0 if all(r.passed for r in results) else 1)


@click.command()
@click.option("--seconds", envvar="BENCH_SECONDS", default=10.0, show_default=True, help="Measured time of each scenario.")
@click.option("--warmup", envvar="BENCH_WARMUP", default=2.0, show_default=True, help="Unmeasured load before each scenario.")
@click.option("--connections", envvar="BENCH_CONNECTIONS", default=16, show_default=True, help="Concurrent client connections.")
@click.option("--output-dir", envvar="BENCH_OUTPUT_DIR", type=click.Path(file_okay=False, path_type=Path),
              show_default="DATA_DIR/bench", help="Where latest.json and a dated copy go.")
@click.option("--stored", envvar="BENCH_STORED", default="", callback=lambda _ctx, _param, value: _counts(value),
              help="Comma-separated counts of stored roles (e.g. 1000,100000): every scenario runs once per count, "
                   "after roles are loaded until that many are stored.")
def bench(seconds: float, warmup: float, connections: int, output_dir: Path | None, stored: tuple[int, ...]) -> None:
    """Benchmark the server against a bare Flask baseline.

    Runs on a throwaway database; prints a table and saves it as JSON.

    Starts the embedded database, the server and the baseline app (two gunicorn workers each), then for
    each scenario (baseline routes; create, read, search with _include, vread, a history page and update of PractitionerRoles)
    drives load over loopback and reports requests/s, latency percentiles, errors, CPU per request of
    the app and the database, their peak memory, the database commands per request (counted at the
    app's /metrics, by command name in the JSON) and the roles stored. Exit status 1 if a scenario had
    errors or could not run; missed targets are reported, not failed.
    """
    from .. import bench as benchmark  # here: its aiohttp and psutil would slow every other command by 0.2 s

    options = benchmark.Options(seconds=seconds, warmup=warmup, connections=connections, stored=stored)
    started = dt.datetime.now().astimezone()
    # SIGTERM unwinds like Ctrl-C, so the processes the run started are stopped either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        results, about = benchmark.run(options, click.echo)
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; the processes it started are stopped") from None
    except (RuntimeError, StoreUnavailable) as e:
        raise click.ClickException(str(e)) from None
    targets = []
    for asked in dict.fromkeys(r.stored_asked for r in results):  # one table per --stored count, in run order
        these = [r for r in results if r.stored_asked == asked]
        found = benchmark.check_targets(these, connections)
        if asked is not None:
            click.echo(f"\nWith {asked} roles stored first:")
            found = [dataclasses.replace(x, text=f"at {asked} stored roles: {x.text}") for x in found]
        click.echo("\n" + benchmark.format_table(these, found))
        targets += found
    counts = [asked for asked in dict.fromkeys(r.stored_asked for r in results) if asked is not None]
    if len(counts) > 1:  # the cost with the most roles stored against that with the fewest
        flat = benchmark.flat_targets(*([r for r in results if r.stored_asked == c] for c in (min(counts), max(counts))))
        click.echo("\n" + benchmark.format_targets(flat))
        targets += flat
    about = {"started": started.isoformat(timespec="seconds"), **about}
    path = benchmark.write_json(benchmark.document(results, targets, about), output_dir or Settings().data_dir / "bench", started)
    click.echo(f"\nSaved {path} (and latest.json beside it).")
    sys.exit(0 if all(r.ok for r in results) else 1)


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"{value!r}: comma-separated whole numbers, e.g. 1000,100000") from None
    if any(c < 0 for c in counts):
        raise click.BadParameter(f"{value!r}: counts of roles are not negative")
    return counts
