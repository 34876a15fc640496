"""The scenarios, in the order they run, and the requests each connection sends.

Creates must all succeed, so each is a distinct role: the IG's create example (``examples/create/``)
with a (practitioner, role code) pair of its own, from Practitioners made for the run and the 1,098
role codes. Reads,
searches and updates then use the roles the creates stored; each update connection has a role of its
own, so that its If-Match always names the current version.
"""

from __future__ import annotations

import functools
import itertools
import json
import typing as t
from dataclasses import dataclass, field

import aiohttp

from ..auth.assertion import Caller
from ..config import PROJECT_DIR, Settings
from ..definitions import load_definitions
from ..terminology import ROLE_CODES
from .load import Connection, Request

EXAMPLES = PROJECT_DIR / "examples"
ROLE_EXAMPLE = EXAMPLES / "create" / "ig-create-example.json"
#: The organisation and facility the example names, created as the examples' README says.
EXAMPLE_REFERENCES = {"Organization": EXAMPLES / "reference-data" / "Organization-GEX001-D.json",
                      "Location": EXAMPLES / "reference-data" / "Location-FEX001-H.json"}
PERSON = "https://standards.digital.health.nz/ns/hpi-person-id"
INCLUDE = "PractitionerRole:practitioner"


@dataclass
class Workload:
    """What the scenarios share: where to send, the headers (a bearer token of ``caller``, renewed in
    place), the Practitioners made for this round of the run, and the ids of the roles the create
    scenario stored."""

    server_url: str
    baseline_url: str
    headers: dict[str, str]
    caller: Caller | None = None
    practitioners: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    #: The (practitioner, role code) pairs not created yet, shared by every create of the run.
    create_keys: t.Iterator[tuple[str, dict[str, t.Any]]] | None = None


Connect = t.Callable[[Workload, aiohttp.ClientSession, int], t.Awaitable[list[Connection]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    request: str  # what is sent, for the report
    #: Whose workers count (CPU, memory) and who is sent to: the server or the baseline app.
    app: t.Literal["server", "baseline"]
    expected: frozenset[int]
    connect: Connect


@functools.cache
def role_codes() -> list[dict[str, t.Any]]:
    concepts = load_definitions(Settings().profiles_dir).value_sets[ROLE_CODES].concepts
    return [{"coding": [c.coding()], "text": c.display} for c in concepts]


def practitioner_ids(count: int, mark: str = "BNC") -> list[str]:
    """CPNs (2 digits, 4 letters) that no reference record has; the database is new for each run.
    Another ``mark`` (3 letters) gives other CPNs (the practitioners of ``--stored`` roles)."""
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return [f"{i // 24 % 100:02d}{mark}{letters[i % 24]}" for i in range(count)]


def reference_data(cpns: t.Iterable[str], headers: dict[str, str]) -> list[Request]:
    """The creates of the records the roles point at: the example's organisation and facility, and the
    Practitioners ``cpns``."""
    requests = [Request("POST", f"/{kind}", path.read_bytes(), headers) for kind, path in EXAMPLE_REFERENCES.items()]
    for cpn in cpns:
        body = {"resourceType": "Practitioner", "identifier": [{"use": "official", "system": PERSON, "value": cpn}],
                "name": [{"family": "Bench", "given": ["Load"]}]}
        requests.append(Request("POST", "/Practitioner", json.dumps(body).encode(), headers))
    return requests


@functools.cache
def _example() -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], json.loads(ROLE_EXAMPLE.read_text(encoding="utf-8")))


def role(cpn: str, code: dict[str, t.Any]) -> bytes:
    return json.dumps({**_example(), "practitioner": {"reference": f"Practitioner/{cpn}"}, "code": [code]}).encode()


class Same:
    """The same request every time."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def next_request(self) -> Request:
        return self.request

    def answered(self, status: int, headers: t.Mapping[str, str], body: bytes) -> None:
        pass


class Creates:
    """Each request a role no other has; remembers the ids of the stored ones."""

    def __init__(self, keys: t.Iterator[tuple[str, dict[str, t.Any]]], workload: Workload) -> None:
        self.keys, self.workload = keys, workload

    def next_request(self) -> Request:
        key = next(self.keys, None)
        if key is None:
            raise RuntimeError("every distinct role has been created: make more practitioners for the run")
        return Request("POST", "/PractitionerRole", role(*key), self.workload.headers)

    def answered(self, status: int, headers: t.Mapping[str, str], body: bytes) -> None:
        if status == 201:  # Location: .../PractitionerRole/{id}/_history/1
            self.workload.roles.append(headers["Location"].split("/")[-3])


class Cycle(Same):
    """Requests in turn from a list."""

    def __init__(self, requests: list[Request], start: int) -> None:
        self.requests = itertools.islice(itertools.cycle(requests), start % len(requests), None)

    def next_request(self) -> Request:
        return next(self.requests)


class Updates:
    """One role, changed at each request (a new e-mail address), sent with its current version."""

    def __init__(self, resource: dict[str, t.Any], etag: str, workload: Workload) -> None:
        self.resource, self.etag, self.workload = resource, etag, workload
        self.count = 0

    def next_request(self) -> Request:
        self.count += 1
        body = {**self.resource, "telecom": [{"system": "email", "value": f"bench{self.count}@example.com", "use": "work"}]}
        return Request("PUT", f"/PractitionerRole/{self.resource['id']}", json.dumps(body).encode(),
                       {**self.workload.headers, "If-Match": self.etag})

    def answered(self, status: int, headers: t.Mapping[str, str], body: bytes) -> None:
        if status == 200:
            self.etag = headers["ETag"]


async def _nothing(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    return [Same(Request("GET", "/nothing"))] * n


async def _store(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    body = role(w.practitioners[0], role_codes()[0])  # a create's body, stored as it is
    return [Same(Request("POST", "/store", body, w.headers))] * n


async def _create(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    # Practitioners vary fastest, so each one's roles grow evenly (the searches read them).
    if w.create_keys is None:
        w.create_keys = ((cpn, code) for code in role_codes() for cpn in w.practitioners)
    return [Creates(w.create_keys, w) for _ in range(n)]


def _stored_roles(w: Workload, n: int) -> list[str]:
    if len(w.roles) < n:
        raise RuntimeError(f"needs {n} roles stored by the create scenario, has {len(w.roles)}")
    return w.roles


async def _read(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    reads = [Request("GET", f"/PractitionerRole/{i}", None, w.headers) for i in _stored_roles(w, n)]
    return [Cycle(reads, i * len(reads) // n) for i in range(n)]


async def _find(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    finds = [Request("GET", f"/find/{i}") for i in _stored_roles(w, n)]
    return [Cycle(finds, i * len(finds) // n) for i in range(n)]


async def _vread(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    vreads = [Request("GET", f"/PractitionerRole/{i}/_history/1", None, w.headers) for i in _stored_roles(w, n)]
    return [Cycle(vreads, i * len(vreads) // n) for i in range(n)]


async def _history(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    return [Same(Request("GET", "/PractitionerRole/_history?_count=20", None, w.headers))] * n


async def _search(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    searches = [Request("GET", f"/PractitionerRole?practitioner={cpn}&_include={INCLUDE}", None, w.headers)
                for cpn in w.practitioners]
    return [Cycle(searches, i) for i in range(n)]


async def _update(w: Workload, session: aiohttp.ClientSession, n: int) -> list[Connection]:
    connections: list[Connection] = []
    for role_id in _stored_roles(w, n)[:n]:
        async with session.get(f"{w.server_url}/PractitionerRole/{role_id}", headers=w.headers) as response:
            if response.status != 200:
                raise RuntimeError(f"reading role {role_id} to update it: {response.status}")
            connections.append(Updates(await response.json(content_type=None), response.headers["ETag"], w))
    return connections


SCENARIOS = (
    Scenario("baseline B: nothing", "GET /nothing (baseline app)", "baseline", frozenset({204}), _nothing),
    Scenario("baseline A: store", "POST /store (baseline app: parse, insert)", "baseline", frozenset({201}), _store),
    Scenario("create", "POST /PractitionerRole", "server", frozenset({201}), _create),
    Scenario("baseline C: find", "GET /find/{id} (baseline app: one role by _id)", "baseline", frozenset({200}), _find),
    Scenario("read", "GET /PractitionerRole/{id}", "server", frozenset({200}), _read),
    Scenario("vread", "GET /PractitionerRole/{id}/_history/1", "server", frozenset({200}), _vread),
    Scenario("history page", "GET /PractitionerRole/_history?_count=20", "server", frozenset({200}), _history),
    Scenario("search + _include", f"GET /PractitionerRole?practitioner=X&_include={INCLUDE}", "server", frozenset({200}), _search),
    Scenario("update", "PUT /PractitionerRole/{id} with If-Match", "server", frozenset({200}), _update),
)
