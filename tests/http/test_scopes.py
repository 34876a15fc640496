"""Scopes (fhir_server/auth/scopes.py, SPEC.md §6): every interaction on every resource type is allowed
with its scope and refused, 403 naming the scope it needs, without it, and a refused write stores
nothing. Bundles are checked entry by entry; the plain-JSON API by its key's client."""

from __future__ import annotations

import copy
import functools
import typing as t
from dataclasses import dataclass

import pytest
import requests

from fhir_server.auth import ALL
from fhir_server.auth.scopes import HPI_SCOPE_PREFIX
from fhir_server.outcome import Msg

from ..support import (
    FHIR_JSON,
    PERSON,
    Server,
    checked_ids,
    fresh_cpn,
    fresh_role,
    outcome_messages,
    practitioner,
    register_client,
    stored_counts,
    text,
)

P = HPI_SCOPE_PREFIX
WORK_PHONE = {"system": "phone", "value": "021 555 1234", "use": "work"}
_org_ids, _location_ids = checked_ids("GSC"), checked_ids("FSC")


@pytest.fixture(scope="module")
def headers_with(server: Server) -> t.Callable[..., dict[str, str]]:
    """The HPI's headers with a token of the development client holding just ``scopes`` (short names)."""
    @functools.cache
    def headers(*scopes: str) -> dict[str, str]:
        return {**server.headers(*scopes), "Content-Type": FHIR_JSON}
    return lambda *scopes: headers(*sorted(scopes))


def everything_but(*scopes: str) -> list[str]:
    return sorted(ALL - set(scopes))


def send(server: Server, headers: dict[str, str], method: str, path: str, body: t.Any = None, **more: str) -> requests.Response:
    return requests.request(method, server.base_url + path, json=body, headers={**headers, **more}, timeout=30)


def new_record(rtype: str) -> dict[str, t.Any]:
    if rtype == "Practitioner":
        return practitioner(fresh_cpn())
    system, ids = {"Organization": ("https://standards.digital.health.nz/ns/hpi-organisation-id", _org_ids),
                   "Location": ("https://standards.digital.health.nz/ns/hpi-facility-id", _location_ids)}[rtype]
    return {"resourceType": rtype, "identifier": [{"use": "official", "system": system, "value": next(ids)}],
            "name": f"Scope test {rtype}"}


@dataclass
class Records:
    """Records of these tests, made with every scope: a role, and one record of each reference type."""

    role: dict[str, t.Any]
    reference: dict[str, dict[str, t.Any]]


@pytest.fixture(scope="module")
def records(server, headers_with) -> Records:
    everything = headers_with(*ALL)
    role = send(server, everything, "POST", "/PractitionerRole", fresh_role())
    assert role.status_code == 201, role.text
    reference = {}
    for rtype in ("Practitioner", "Organization", "Location"):
        made = send(server, everything, "POST", f"/{rtype}", new_record(rtype))
        assert made.status_code == 201, made.text
        reference[rtype] = made.json()
    return Records(role.json(), reference)


# --- one request per interaction, and what a refused one must have left alone ------------------------

@dataclass(frozen=True)
class Interaction:
    rtype: str
    name: str
    allowed_by: tuple[str, ...]  # each scope that alone allows it, besides the type's .a
    ok: int

    @property
    def needed(self) -> str:
        """The scope the refusal names."""
        return " or ".join(P + s for s in self.allowed_by)

    def __str__(self) -> str:
        return f"{self.rtype} {self.name}"


def request_for(server: Server, records: Records, interaction: Interaction, headers: dict[str, str],
                everything: dict[str, str]) -> requests.Response:
    """The interaction's request with ``headers`` (``everything``: headers with every scope, to read what to update)."""
    rtype, name = interaction.rtype, interaction.name
    record = records.role if rtype == "PractitionerRole" else records.reference[rtype]
    rid = record["id"]
    if name == "read":
        return send(server, headers, "GET", f"/{rtype}/{rid}")
    if name == "vread":
        return send(server, headers, "GET", f"/{rtype}/{rid}/_history/{record['meta']['versionId']}")
    if name == "history":
        return send(server, headers, "GET", f"/{rtype}/{rid}/_history")
    if name == "type history":
        return send(server, headers, "GET", f"/{rtype}/_history")
    if name == "search":
        query = f"practitioner={records.role['practitioner']['reference'].split('/')[-1]}" if rtype == "PractitionerRole" else f"_id={rid}"
        return send(server, headers, "GET", f"/{rtype}?{query}")
    if name == "create":
        return send(server, headers, "POST", f"/{rtype}", fresh_role() if rtype == "PractitionerRole" else new_record(rtype))
    if name == "update":
        current = send(server, everything, "GET", f"/{rtype}/{rid}").json()
        changed = copy.deepcopy(current)
        if rtype == "PractitionerRole":
            changed["telecom"] = [{**WORK_PHONE, "value": f"021 555 {int(current['meta']['versionId']):04d}"}]
        elif rtype == "Practitioner":
            changed["name"] = [{"family": f"Renamed {current['meta']['versionId']}", "given": ["Test"]}]
        else:
            changed["name"] = f"Renamed {current['meta']['versionId']}"
        return send(server, headers, "PUT", f"/{rtype}/{rid}", changed, **{"If-Match": f'W/"{current["meta"]["versionId"]}"'})
    if name == "$validate":
        return send(server, headers, "POST", f"/{rtype}/$validate", fresh_role())
    if name == "$validate of an update":
        current = send(server, everything, "GET", f"/{rtype}/{rid}").json()
        return send(server, headers, "POST", f"/{rtype}/{rid}/$validate", current)
    raise AssertionError(name)


def what_is_stored(server: Server, mongo, records: Records, rtype: str, everything: dict[str, str]) -> t.Any:
    """What a refused write must leave as it was: the counts of records, and the versions of ours."""
    ours = records.role if rtype == "PractitionerRole" else records.reference[rtype]
    current = send(server, everything, "GET", f"/{rtype}/{ours['id']}").json()["meta"]["versionId"]
    return stored_counts(mongo), mongo["reference_resources"].count_documents({}), current


INTERACTIONS = [
    *(Interaction("PractitionerRole", name, ("PractitionerRole.r",), 200) for name in ("read", "vread", "history", "type history")),
    Interaction("PractitionerRole", "search", ("PractitionerRole.s",), 200),
    Interaction("PractitionerRole", "create", ("PractitionerRole.c",), 201),
    Interaction("PractitionerRole", "update", ("PractitionerRole.u",), 200),
    Interaction("PractitionerRole", "$validate", ("PractitionerRole.c",), 200),
    Interaction("PractitionerRole", "$validate of an update", ("PractitionerRole.u",), 200),
    *(Interaction("Practitioner", name, ("Practitioner.r",), 200) for name in ("read", "vread")),
    Interaction("Practitioner", "search", ("Practitioner.s",), 200),
    Interaction("Practitioner", "create", ("Practitioner.c",), 201),
    Interaction("Practitioner", "update", ("Practitioner.u",), 200),
    *(Interaction(rtype, name, (f"{rtype}.r",), 200) for rtype in ("Organization", "Location") for name in ("read", "vread")),
    *(Interaction(rtype, "search", (f"{rtype}.s",), 200) for rtype in ("Organization", "Location")),
    # The HPI offers no writes of these: this server's need its admin scope.
    *(Interaction(rtype, name, (f"{rtype}.a",), ok) for rtype in ("Organization", "Location")
      for name, ok in (("create", 201), ("update", 200))),
]
WRITES = {"create", "update"}


@pytest.mark.parametrize("interaction", INTERACTIONS, ids=str)
def test_each_scope_that_allows_it_alone_does(server, records, headers_with, interaction):
    for scope in {*interaction.allowed_by, f"{interaction.rtype}.a"}:
        response = request_for(server, records, interaction, headers_with(scope), headers_with(*ALL))
        assert response.status_code == interaction.ok, (scope, response.text)


@pytest.mark.parametrize("interaction", INTERACTIONS, ids=str)
def test_without_its_scope_it_is_403_naming_the_scope_and_nothing_is_stored(server, mongo, records, headers_with, interaction):
    everything = headers_with(*ALL)
    before = what_is_stored(server, mongo, records, interaction.rtype, everything)
    # Every other scope the server knows, that of the type's other interactions included.
    others = headers_with(*everything_but(*interaction.allowed_by, f"{interaction.rtype}.a"))
    response = request_for(server, records, interaction, others, everything)
    assert response.status_code == 403
    assert outcome_messages(response) == [text(Msg.SCOPE_REQUIRED, scope=interaction.needed)]
    assert response.json()["issue"][0]["code"] == "forbidden"
    assert what_is_stored(server, mongo, records, interaction.rtype, everything) == before


def test_a_token_with_no_scope_of_the_type_reaches_none_of_its_interactions(server, records, headers_with):
    only_roles = headers_with("PractitionerRole.r", "PractitionerRole.s", "PractitionerRole.c", "PractitionerRole.u")
    for interaction in INTERACTIONS:
        status = request_for(server, records, interaction, only_roles, headers_with(*ALL)).status_code
        assert (status == 403) == (interaction.rtype != "PractitionerRole"), interaction


# --- Bundles: each entry needs the scope of what it does ---------------------------------------------

def entry(method: str, url: str, resource: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    return {"request": {"method": method, "url": url}, **({"resource": resource} if resource is not None else {})}


def test_batch_entries_are_refused_one_by_one_by_scope(server, mongo, records, headers_with):
    cpn, before = fresh_cpn(), stored_counts(mongo)
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        entry("GET", f"PractitionerRole/{records.role['id']}"),
        entry("POST", "Practitioner", practitioner(cpn)),
        entry("GET", f"Practitioner/{records.reference['Practitioner']['id']}"),
        entry("POST", "PractitionerRole", fresh_role()),
        entry("GET", f"PractitionerRole?practitioner={cpn}"),
    ]}
    response = send(server, headers_with("PractitionerRole.r"), "POST", "/", batch)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["200 OK"] + ["403 Forbidden"] * 4
    needed = [f"{P}Practitioner.c", f"{P}Practitioner.r", f"{P}PractitionerRole.c", f"{P}PractitionerRole.s"]
    assert [[i["diagnostics"] for i in e["response"]["outcome"]["issue"]] for e in entries[1:]] == \
        [[text(Msg.SCOPE_REQUIRED, scope=s)] for s in needed]
    assert stored_counts(mongo) == before
    assert mongo["reference_resources"].count_documents({"_id": f"Practitioner/{cpn}"}) == 0


def test_a_transaction_with_an_entry_out_of_scope_is_rolled_back_whole(server, mongo, headers_with):
    cpn, before = fresh_cpn(), stored_counts(mongo)
    role = fresh_role(practitioner={"reference": f"Practitioner?identifier={PERSON}|{cpn}"})
    transaction = {"resourceType": "Bundle", "type": "transaction",
                   "entry": [entry("POST", "Practitioner", practitioner(cpn)), entry("POST", "PractitionerRole", role)]}
    # It may create practitioners and search them (the conditional reference), but not create roles.
    response = send(server, headers_with("Practitioner.c", "Practitioner.s"), "POST", "/", transaction)
    assert response.status_code == 403
    assert text(Msg.SCOPE_REQUIRED, scope=f"{P}PractitionerRole.c") in outcome_messages(response)
    assert stored_counts(mongo) == before
    assert mongo["reference_resources"].count_documents({"_id": f"Practitioner/{cpn}"}) == 0
    # The same transaction with the scope it lacked goes through.
    allowed = send(server, headers_with("Practitioner.c", "Practitioner.s", "PractitionerRole.c"), "POST", "/", transaction)
    assert allowed.status_code == 200, allowed.text


# --- the plain-JSON API: its key's client's scopes ---------------------------------------------------

def test_the_plain_api_refuses_a_create_to_a_client_without_practitioner_role_c(server, mongo, records):
    reader = register_client(mongo, "scopes: plain reader", "PractitionerRole.r", "PractitionerRole.s")
    before = stored_counts(mongo)
    cpn = records.reference["Practitioner"]["id"]
    response = requests.post(server.base_url + "/v1/practitioner-roles", json={"practitionerId": cpn, "role": "nurse"},
                             headers={"x-api-key": reader.api_key}, timeout=30)
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == {"code": "FORBIDDEN", "message": text(Msg.SCOPE_REQUIRED, scope=f"{P}PractitionerRole.c"),
                             "fields": {}}
    assert body["meta"]["status"] == 403
    assert stored_counts(mongo) == before
    writer = register_client(mongo, "scopes: plain writer", "PractitionerRole.c")
    allowed = requests.post(server.base_url + "/v1/practitioner-roles", json={"practitionerId": cpn, "role": "nurse"},
                            headers={"x-api-key": writer.api_key}, timeout=30)
    assert allowed.status_code == 201, allowed.text
