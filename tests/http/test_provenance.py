"""The audit trail (fhir_server/audit.py): every write's Provenance, stored with its version and read
at /Provenance with the admin scope of the target's type."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
import uuid

import pytest
import requests
from fhir.resources.R4B.provenance import Provenance

from fhir_server import audit
from fhir_server.auth.scopes import HPI_SCOPE_PREFIX
from fhir_server.outcome import Msg, issue
from fhir_server.store.api_keys import digest

from ..support import PERSON, ROOT, Api, Server, checked_ids, fresh_cpn, fresh_role, outcome_messages, practitioner
from .test_update import updatable_parts_of

ADMIN = ("PractitionerRole.a", "Practitioner.a", "Organization.a", "Location.a")
_organisations = checked_ids("GPV")  # a series of this module's own


def provenance_of(api: Api, target: str, **params: t.Any) -> dict[str, t.Any]:
    response = api.get("/Provenance", params={"target": target, **params})
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    for entry in bundle.get("entry", []):
        check_valid(entry["resource"])
    return bundle


def check_valid(resource: dict[str, t.Any]) -> None:
    """Valid FHIR R4 (R4B's Provenance is element for element R4's)."""
    Provenance.model_validate(resource)


def read(api: Api, pid: str) -> dict[str, t.Any]:
    response = api.get(f"/Provenance/{pid}")
    assert response.status_code == 200, response.text
    check_valid(response.json())
    return response.json()


def check_written(provenance: dict[str, t.Any], version: dict[str, t.Any], activity: str, server: Server,
                  userid: str | None = "99ZZZS") -> None:
    """``provenance`` says that ``version`` was written by the development client (and ``userid``)."""
    rtype, rid, vid = version["resourceType"], version["id"], version["meta"]["versionId"]
    assert provenance["id"] == f"{rtype}-{rid}-{vid}"
    assert provenance["target"] == [{"reference": f"{rtype}/{rid}/_history/{vid}"}]
    assert provenance["recorded"] == version["meta"]["lastUpdated"]
    assert provenance["activity"]["coding"] == [{"system": audit.DATA_OPERATION, "code": activity,
                                                 "display": {"CREATE": "create", "UPDATE": "revise"}[activity]}]
    agents = {a["type"]["coding"][0]["code"]: a for a in provenance["agent"]}
    if userid is None:
        assert "author" not in agents
    else:
        assert agents["author"]["who"] == {"identifier": {"system": PERSON, "value": userid}}
    client = agents["110150"]
    assert client["who"]["identifier"] == {"system": audit.CLIENT_SYSTEM, "value": server.credentials.client_id}
    assert client["who"]["display"] == "development"
    assert client["extension"] == [{"url": audit.API_KEY_EXTENSION, "valueString": digest(server.api_key)[:12]}]


@pytest.fixture
def role(api: Api) -> dict[str, t.Any]:
    response = api.create(fresh_role())
    assert response.status_code == 201, response.text
    return response.json()


# --- every kind of write ------------------------------------------------------------------------------

def test_a_create_and_an_update_each_record_who_made_them(api, server, role):
    check_written(read(api, f"PractitionerRole-{role['id']}-1"), role, "CREATE", server)
    body = {**role, **updatable_parts_of("R00000197-A.PUT-update-telecom-and-messaging-address.json")}
    updated = api.put(f"/PractitionerRole/{role['id']}", body, if_match='W/"1"')
    assert updated.status_code == 200, updated.text
    check_written(read(api, f"PractitionerRole-{role['id']}-2"), updated.json(), "UPDATE", server)

    bundle = provenance_of(api, f"PractitionerRole/{role['id']}")
    assert bundle["total"] == 2
    assert [e["resource"]["id"] for e in bundle["entry"]] == [f"PractitionerRole-{role['id']}-{v}" for v in (2, 1)]
    assert bundle["entry"][0]["fullUrl"].endswith(f"/Provenance/PractitionerRole-{role['id']}-2")
    one = provenance_of(api, f"PractitionerRole/{role['id']}/_history/1")
    assert one["total"] == 1 and one["entry"][0]["resource"] == read(api, f"PractitionerRole-{role['id']}-1")


def test_a_version_and_its_provenance_are_one_stored_document(api, mongo, role):
    body = {**role, **updatable_parts_of("R00000197-A.PUT-update-end-date-and-reason.json")}
    assert api.put(f"/PractitionerRole/{role['id']}", body, if_match='W/"1"').status_code == 200
    for vid in (1, 2):
        stored = mongo["practitioner_role_versions"].find_one({"_id": f"{role['id']}/{vid}"})
        assert stored["resource"]["meta"]["versionId"] == str(vid)
        assert stored["provenance"]["vid"] == vid
        assert audit.provenance("PractitionerRole", role["id"], stored["provenance"]) == read(api, f"PractitionerRole-{role['id']}-{vid}")
    # The current document carries the current version's, to re-write a version a crash lost.
    current = mongo["practitioner_roles"].find_one({"_id": role["id"]})
    assert current["provenance"] == mongo["practitioner_role_versions"].find_one({"_id": f"{role['id']}/2"})["provenance"]


def test_a_role_whose_version_was_lost_still_has_its_provenance(api, mongo, role):
    # As if the server died between writing the role and keeping its version.
    kept = mongo["practitioner_role_versions"].find_one_and_delete({"_id": f"{role['id']}/1"})
    assert read(api, f"PractitionerRole-{role['id']}-1") == audit.provenance("PractitionerRole", role["id"], kept["provenance"])
    assert provenance_of(api, f"PractitionerRole/{role['id']}")["total"] == 1
    # The next update writes the lost version again, its Provenance with it.
    body = {**role, **updatable_parts_of("R00000197-A.PUT-update-end-date-and-reason.json")}
    assert api.put(f"/PractitionerRole/{role['id']}", body, if_match='W/"1"').status_code == 200
    assert mongo["practitioner_role_versions"].find_one({"_id": f"{role['id']}/1"})["provenance"] == kept["provenance"]
    assert provenance_of(api, f"PractitionerRole/{role['id']}")["total"] == 2


def test_search_pages_as_other_searches(api, role):
    body = {**role, **updatable_parts_of("R00000197-A.PUT-update-telecom-and-messaging-address.json")}
    assert api.put(f"/PractitionerRole/{role['id']}", body, if_match='W/"1"').status_code == 200
    first = provenance_of(api, f"PractitionerRole/{role['id']}", _count=1)
    assert first["total"] == 2 and [e["resource"]["id"] for e in first["entry"]] == [f"PractitionerRole-{role['id']}-2"]
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = api.get(following.removeprefix(api.base)).json()
    assert [e["resource"]["id"] for e in second["entry"]] == [f"PractitionerRole-{role['id']}-1"]
    assert not [link for link in second["link"] if link["relation"] == "next"]


def bundle(kind: str, *entries: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_bundle_entries_record_who_made_them(api, server, kind):
    cpn, urn = fresh_cpn(), f"urn:uuid:{uuid.uuid4()}"
    response = api.post("/", bundle(kind,
                                    {"fullUrl": urn, "resource": practitioner(cpn), "request": {"method": "POST", "url": "Practitioner"}},
                                    {"resource": fresh_role(practitioner={"reference": f"Practitioner/{cpn}" if kind == "batch" else urn}),
                                     "request": {"method": "POST", "url": "PractitionerRole"}}))
    assert response.status_code == 200, response.text
    written = [e["resource"] for e in response.json()["entry"]]
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created"] * 2
    for resource in written:
        check_written(read(api, f"{resource['resourceType']}-{resource['id']}-1"), resource, "CREATE", server)


def test_a_plain_json_create_records_its_client_and_no_person(api, server):
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    response = requests.post(server.base_url + "/v1/practitioner-roles", json={"practitionerId": cpn, "role": "doctor"},
                             headers={"x-api-key": server.api_key}, timeout=30)
    assert response.status_code == 201, response.text
    rid = response.json()["data"]["id"]
    stored = api.get(f"/PractitionerRole/{rid}").json()
    check_written(read(api, f"PractitionerRole-{rid}-1"), stored, "CREATE", server, userid=None)


@pytest.mark.parametrize("rtype", ["Practitioner", "Organization"])
def test_reference_data_creates_and_updates_record_who_made_them(api, server, mongo, rtype):
    if rtype == "Practitioner":
        record = practitioner(fresh_cpn())
    else:
        record = {"resourceType": "Organization", "name": "Audited",
                  "identifier": [{"use": "official", "system": "https://standards.digital.health.nz/ns/hpi-organisation-id",
                                  "value": next(_organisations)}]}
    created = api.post(f"/{rtype}", record)
    assert created.status_code == 201, created.text
    first = created.json()
    updated = api.put(f"/{rtype}/{first['id']}", {**first, "name": [{"family": "Renamed"}] if rtype == "Practitioner" else "Renamed"},
                      if_match='W/"1"')
    assert updated.status_code == 200, updated.text
    check_written(read(api, f"{rtype}-{first['id']}-1"), first, "CREATE", server)
    check_written(read(api, f"{rtype}-{first['id']}-2"), updated.json(), "UPDATE", server)
    assert [e["resource"]["id"] for e in provenance_of(api, f"{rtype}/{first['id']}")["entry"]] == \
        [f"{rtype}-{first['id']}-{v}" for v in (2, 1)]
    # Kept in the record's one document, beside its current version.
    stored = mongo["reference_resources"].find_one({"_id": f"{rtype}/{first['id']}"})
    assert stored["resource"]["meta"]["versionId"] == "2"
    assert [audit.provenance(rtype, first["id"], p) for p in stored["provenance"]] == \
        [read(api, f"{rtype}-{first['id']}-{v}") for v in (1, 2)]


def test_a_dormant_id_finds_the_records_provenances_which_name_its_live_id(api):
    cpn, dormant = fresh_cpn(), fresh_cpn()
    record = practitioner(cpn)
    record["identifier"].append({"use": "old", "system": PERSON, "value": dormant})
    assert api.post("/Practitioner", record).status_code == 201
    (entry,) = provenance_of(api, f"Practitioner/{dormant}")["entry"]
    assert entry["resource"]["target"] == [{"reference": f"Practitioner/{cpn}/_history/1"}]
    assert provenance_of(api, f"Practitioner/{dormant}/_history/1")["entry"] == [entry]
    assert api.get(f"/Provenance/Practitioner-{dormant}-1").status_code == 404


def test_fhir_server_load_and_first_start_data_record_the_command(api, server, tmp_path):
    cpn = fresh_cpn()
    path = tmp_path / "load.ndjson"
    path.write_text(json.dumps(practitioner(cpn)) + "\n")
    env = {**server.env, "DATA_DIR": str(tmp_path / "var")}
    loaded = subprocess.run([sys.executable, "-m", "fhir_server", "load", str(path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    (entry,) = provenance_of(api, f"Practitioner/{cpn}")["entry"]
    assert [a["who"] for a in entry["resource"]["agent"]] == [{"display": "fhir-server"}]
    # The reference data `fhir-server serve` loaded on first start.
    seeded = provenance_of(api, "PractitionerRole/R00000012-G")["entry"][0]["resource"]
    assert seeded["target"] == [{"reference": "PractitionerRole/R00000012-G/_history/13"}]
    assert [a["who"] for a in seeded["agent"]] == [{"display": "fhir-server serve"}]
    assert provenance_of(api, "Practitioner/98ZZQJ")["total"] == 1


# --- who may read it ----------------------------------------------------------------------------------

def get(server: Server, path: str, *scopes: str, **params: t.Any) -> requests.Response:
    return requests.get(server.base_url + path, params=params, headers=server.headers(*scopes), timeout=30)


def test_reading_provenance_needs_the_admin_scope_of_the_targets_type(server, role):
    pid = f"PractitionerRole-{role['id']}-1"
    for response in (get(server, f"/Provenance/{pid}", "PractitionerRole.r", "PractitionerRole.s", "PractitionerRole.c",
                         "PractitionerRole.u", "Practitioner.a"),
                     get(server, "/Provenance", "Practitioner.a", target=f"PractitionerRole/{role['id']}")):
        assert response.status_code == 403, response.text
        assert outcome_messages(response) == [issue(Msg.ADMIN_REQUIRED, what="Provenance",
                                                    scope=f"{HPI_SCOPE_PREFIX}PractitionerRole.a").diagnostics]
    assert get(server, f"/Provenance/{pid}", "PractitionerRole.a").status_code == 200
    assert get(server, "/Provenance", "PractitionerRole.a", target=f"PractitionerRole/{role['id']}").json()["total"] == 1
    # Another type's Provenance needs that type's admin scope.
    seeded = get(server, "/Practitioner/98ZZQJ", "Practitioner.r").json()["meta"]["versionId"]
    assert get(server, f"/Provenance/Practitioner-98ZZQJ-{seeded}", "PractitionerRole.a").status_code == 403
    assert get(server, f"/Provenance/Practitioner-98ZZQJ-{seeded}", "Practitioner.a").status_code == 200
    assert get(server, "/Provenance", "PractitionerRole.a", target="Organization/G00001-G").status_code == 403


@pytest.mark.parametrize("pid", ["PractitionerRole-R99999999-X-1", "PractitionerRole-R00000012-G-99", "Practitioner-98ZZQJ-7",
                                 "Nothing-1", "Patient-1-1", "PractitionerRole-R00000012-G-x"])
def test_an_unknown_id_is_404(api, pid):
    response = api.get(f"/Provenance/{pid}")
    assert response.status_code == 404
    assert outcome_messages(response) == [issue(Msg.NOT_FOUND, id=pid).diagnostics]


def test_a_search_needs_one_target(api):
    for params in ({}, {"target": ["Practitioner/98ZZQJ", "Practitioner/90ZZLP"]}):
        response = api.get("/Provenance", params=params)
        assert response.status_code == 400
        assert outcome_messages(response) == [issue(Msg.SEARCH_TARGET_REQUIRED, types=", ".join(audit.TARGET_TYPES)).diagnostics]
    response = api.get("/Provenance", params={"target": "Patient/1"})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.SEARCH_VALUE_INVALID, name="target", value="Patient/1").diagnostics]
    assert provenance_of(api, "PractitionerRole/R99999999-X")["total"] == 0


def test_the_capability_statement_and_openapi_list_provenance(api):
    statement = requests.get(api.base + "/metadata", timeout=30).json()
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Provenance"]
    assert {i["code"] for i in entry["interaction"]} >= {"read", "search-type"}
    assert "create" not in {i["code"] for i in entry["interaction"]}
    assert [p["name"] for p in entry["searchParam"]] == ["target", "_count", "_offset"]
    paths = requests.get(api.base + "/openapi.json", timeout=30).json()["paths"]
    assert set(paths["/Provenance"]) == {"get"} and set(paths["/Provenance/{pid}"]) == {"get"}
    assert "target" in [p["name"] for p in paths["/Provenance"]["get"]["parameters"]]
