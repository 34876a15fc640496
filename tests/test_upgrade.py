"""A database written by the previous version of the server: a development start migrates it, nothing is lost.

Before this version, roles had no kept versions, search fields or identifier keys, their reserved
periods carried no version tag, and reference data had no versions or search fields."""

from __future__ import annotations

import typing as t

from pymongo import MongoClient

from fhir_server.outcome import Msg, issue
from fhir_server.seed import load_resources

from .support import Api, fresh_role, outcome_messages, start_server


def make_it_look_older(db: t.Any) -> None:
    db["schema"].drop()  # that version recorded no schema version
    for r in load_resources():
        if r["resourceType"] != "PractitionerRole":
            db["reference_resources"].update_one({"_id": f"{r['resourceType']}/{r['id']}"},
                                                 {"$set": {"resource": r}, "$unset": {"vid": "", "search": ""}})
    db["reference_resources"].drop_indexes()
    db["reference_resources"].create_index("refs")
    db["practitioner_roles"].drop_indexes()
    db["practitioner_roles"].update_many({}, {"$unset": {"search": "", "identifiers": "", "held": ""}})
    db["practitioner_role_versions"].drop()
    for key in db["role_keys"].find():
        old = [{k: v for k, v in p.items() if k != "by"} for p in key["periods"]]
        db["role_keys"].update_one({"_id": key["_id"]}, {"$set": {"periods": old}})


def test_an_earlier_database_is_completed_on_start(database, tmp_path):
    env = {"MONGODB_URI": database.uri, "MONGODB_DATABASE": "fhir_earlier"}
    server = start_server(tmp_path / "var", **env)
    created = Api(server).create(fresh_role()).json()
    server.stop()
    client: MongoClient[dict[str, t.Any]] = MongoClient(database.uri)
    db = client["fhir_earlier"]
    try:
        make_it_look_older(db)
        server = start_server(tmp_path / "var", **env)
        try:
            api = Api(server)
            # Reference data: versions, search fields, the unique index.
            assert api.get("/Practitioner/97ZACB").json()["meta"]["versionId"] == "1"
            assert [e["resource"]["id"] for e in api.get("/Practitioner", params={"identifier": "90ZZGJ"}).json()["entry"]] == ["98ZZQJ"]
            organization = api.get("/Organization/G00000-E").json()
            assert api.put("/Organization/G00000-E", {**organization, "name": "Renamed"}, if_match="1").status_code == 200
            assert db["reference_resources"].index_information()["refs_1"].get("unique") is True
            # Roles: found by search, their version kept, updatable, and still holding their periods.
            found = api.get("/PractitionerRole", params={"practitioner": "97ZACB", "_id": created["id"]}).json()
            assert [e["resource"] for e in found["entry"]] == [created]
            assert api.get(f"/PractitionerRole/{created['id']}/_history/1").json() == created
            body = {**created, "telecom": [{"system": "phone", "value": "021 555 0501", "use": "work"}]}
            assert api.put(f"/PractitionerRole/{created['id']}", body, if_match="1").status_code == 200
            duplicate = api.create({**fresh_role(), "code": created["code"]})
            assert outcome_messages(duplicate) == [issue(Msg.DUPLICATE).diagnostics]
            assert all("by" in p for key in db["role_keys"].find() for p in key["periods"])
        finally:
            server.stop()
    finally:
        client.close()
