"""Access rules that depend on the data (fhir_server/auth/scopes.py): inactive roles in searches,
``_include`` scopes, conditional creates that find a record, and merges of dormant identifiers."""

from __future__ import annotations

import pytest

from fhir_server.auth.scopes import HPI_SCOPE_PREFIX
from fhir_server.outcome import Msg

from ..support import PERSON, fresh_cpn, fresh_role, outcome_messages, practitioner, text
from .test_confidentiality import Caller, entries
from .test_update import reason

SEARCHER = ("PractitionerRole.s",)


@pytest.fixture(scope="module")
def roles(api, person) -> dict[str, str]:
    """Two active roles and one that ended, of one practitioner."""
    made = {}
    for name, period in (("active", {"start": "2022-05-05"}), ("also_active", {"start": "2023-01-01"}),
                         ("ended", {"start": "2020-01-01", "end": "2021-01-01"})):
        body = fresh_role(practitioner={"reference": f"Practitioner/{person}"}, period=period)
        if "end" in period:
            body["extension"] = [*body["extension"], reason("other")]
        response = api.create(body)
        assert response.status_code == 201, response.text
        made[name] = response.json()["id"]
    return made


# --- inactive roles -----------------------------------------------------------------------------------

def test_search_without_admin_leaves_inactive_roles_out(server, api, roles, person):
    response = Caller(server, *SEARCHER).get("/PractitionerRole", practitioner=person)
    assert sorted(r["id"] for r in entries(response)) == sorted([roles["active"], roles["also_active"]])
    assert response.json()["total"] == 2
    everything = api.get("/PractitionerRole", params={"practitioner": person})
    assert sorted(r["id"] for r in entries(everything)) == sorted(roles.values())


def test_paging_counts_only_what_the_caller_may_see(server, roles, person):
    caller = Caller(server, *SEARCHER)
    first = caller.get("/PractitionerRole", practitioner=person, _count="1")
    assert first.json()["total"] == 2
    second = caller.get("/PractitionerRole", practitioner=person, _count="1", _offset="1")
    assert [r["id"] for r in entries(first) + entries(second)] == sorted([roles["active"], roles["also_active"]])
    assert "next" not in [link["relation"] for link in second.json()["link"]]


def test_asking_for_inactive_roles_without_admin_finds_none(server, api, roles, person):
    response = Caller(server, *SEARCHER).get("/PractitionerRole", practitioner=person, active="false")
    assert entries(response) == [] and response.json()["total"] == 0
    assert [r["id"] for r in entries(api.get("/PractitionerRole", params={"practitioner": person, "active": "false"}))] \
        == [roles["ended"]]


def test_an_inactive_role_is_still_read_by_id(server, roles):
    assert Caller(server, "PractitionerRole.r").get(f"/PractitionerRole/{roles['ended']}").status_code == 200


# --- _include --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("element, rtype", [("practitioner", "Practitioner"), ("organization", "Organization"),
                                            ("location", "Location")])
def test_include_needs_the_read_scope_of_the_included_type(server, roles, person, element, rtype):
    params = {"practitioner": person, "_include": f"PractitionerRole:{element}"}
    refused = Caller(server, *SEARCHER).get("/PractitionerRole", **params)
    assert refused.status_code == 403
    assert outcome_messages(refused) == [text(Msg.SCOPE_REQUIRED, scope=f"{HPI_SCOPE_PREFIX}{rtype}.r")]
    allowed = Caller(server, *SEARCHER, f"{rtype}.r").get("/PractitionerRole", **params)
    assert rtype in {r["resourceType"] for r in entries(allowed)}


# --- conditional create ----------------------------------------------------------------------------------

def test_a_conditional_role_create_that_finds_one_needs_read(server, api, roles):
    existing = api.get(f"/PractitionerRole/{roles['active']}").json()
    official = existing["identifier"][0]
    condition = {"If-None-Exist": f"identifier={official['system']}|{official['value']}"}
    refused = Caller(server, "PractitionerRole.c").post("/PractitionerRole", fresh_role(identifier=[official]), **condition)
    assert refused.status_code == 403
    assert outcome_messages(refused) == [text(Msg.SCOPE_REQUIRED, scope=f"{HPI_SCOPE_PREFIX}PractitionerRole.r")]
    found = Caller(server, "PractitionerRole.c", "PractitionerRole.r").post("/PractitionerRole", fresh_role(identifier=[official]),
                                                                           **condition)
    assert found.status_code == 200 and found.json()["id"] == roles["active"]


def test_a_conditional_create_that_finds_nothing_needs_only_create(server):
    identifier = {"system": "https://clinic.example.org/roles", "value": fresh_cpn()}
    created = Caller(server, "PractitionerRole.c").post("/PractitionerRole", fresh_role(identifier=[identifier]),
                                                        **{"If-None-Exist": f"identifier={identifier['system']}|{identifier['value']}"})
    assert created.status_code == 201, created.text


def test_a_conditional_practitioner_create_that_finds_one_needs_read(server, person):
    condition = {"If-None-Exist": f"identifier={PERSON}|{person}"}
    refused = Caller(server, "Practitioner.c").post("/Practitioner", practitioner(person), **condition)
    assert refused.status_code == 403
    assert outcome_messages(refused) == [text(Msg.SCOPE_REQUIRED, scope=f"{HPI_SCOPE_PREFIX}Practitioner.r")]
    found = Caller(server, "Practitioner.c", "Practitioner.r").post("/Practitioner", practitioner(person), **condition)
    assert found.status_code == 200 and found.json()["id"] == person


# --- merges ----------------------------------------------------------------------------------------------

def with_dormant(cpn: str, *dormant: str) -> dict:
    body = practitioner(cpn)
    return {**body, "identifier": [*body["identifier"], *({"use": "old", "system": PERSON, "value": d} for d in dormant)]}


MERGE = text(Msg.MERGE_ADMIN_ONLY, type="Practitioner", scope=f"{HPI_SCOPE_PREFIX}Practitioner.a")


def test_creating_a_practitioner_with_a_dormant_id_needs_admin(server, api, mongo):
    cpn, dormant = fresh_cpn(), fresh_cpn()
    refused = Caller(server, "Practitioner.c").post("/Practitioner", with_dormant(cpn, dormant))
    assert refused.status_code == 403 and outcome_messages(refused) == [MERGE]
    assert mongo["reference_resources"].count_documents({"refs": f"Practitioner/{dormant}"}) == 0
    assert api.post("/Practitioner", with_dormant(cpn, dormant)).status_code == 201


def test_adding_removing_or_moving_a_dormant_id_needs_admin(server, api):
    first, second, dormant = fresh_cpn(), fresh_cpn(), fresh_cpn()
    assert api.post("/Practitioner", practitioner(first)).status_code == 201
    assert api.post("/Practitioner", with_dormant(second, dormant)).status_code == 201
    updater = Caller(server, "Practitioner.u")
    for rid, body in ((first, with_dormant(first, fresh_cpn())), (second, practitioner(second))):
        refused = updater.put(f"/Practitioner/{rid}", {**body, "id": rid}, "1")
        assert refused.status_code == 403 and outcome_messages(refused) == [MERGE]
    # Moving: off one record (admin), onto another: still a merge.
    assert api.put(f"/Practitioner/{second}", {**practitioner(second), "id": second}, if_match="1").status_code == 200
    refused = updater.put(f"/Practitioner/{first}", {**with_dormant(first, dormant), "id": first}, "1")
    assert refused.status_code == 403 and outcome_messages(refused) == [MERGE]
    assert api.put(f"/Practitioner/{first}", {**with_dormant(first, dormant), "id": first}, if_match="1").status_code == 200
    assert api.get(f"/Practitioner/{dormant}").json()["id"] == first


def test_an_update_that_keeps_the_dormant_ids_needs_no_admin(server, api):
    cpn, dormant = fresh_cpn(), fresh_cpn()
    assert api.post("/Practitioner", with_dormant(cpn, dormant)).status_code == 201
    body = {**with_dormant(cpn, dormant), "id": cpn, "name": [{"family": "Renamed"}]}
    assert Caller(server, "Practitioner.u").put(f"/Practitioner/{cpn}", body, "1").status_code == 200
