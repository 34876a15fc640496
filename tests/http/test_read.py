"""GET /PractitionerRole/{id} and the reference data loaded on first start."""

from __future__ import annotations

import json

import pytest

from fhir_server.outcome import Msg, issue
from fhir_server.seed import load_resources

from ..support import ROOT, outcome_messages

SEEDED = ["R00000012-G", "R00000015-C", "R00000029-P"]


@pytest.mark.parametrize("role_id", SEEDED)
def test_the_igs_example_roles_are_there(api, role_id):
    example = json.loads((ROOT / "fhir_server" / "reference_data" / f"{role_id}.json").read_text())
    response = api.get(f"/PractitionerRole/{role_id}")
    assert response.status_code == 200
    assert response.json() == example
    assert response.headers["ETag"] == f'W/"{example["meta"]["versionId"]}"'
    assert response.headers["Last-Modified"]


def test_the_create_example_record_is_not_preloaded():
    # The IG's create answer (R00000197-A) is what a create issues, not example data a server starts
    # with (the session's own creates may be issued that id).
    assert "R00000197-A" not in {r["id"] for r in load_resources() if r["resourceType"] == "PractitionerRole"}


@pytest.mark.parametrize("role_id", ["R99999999-A", "R00000012-H", "nonsense"])
def test_unknown_or_malformed_id_is_404(api, role_id):
    response = api.get(f"/PractitionerRole/{role_id}")
    assert response.status_code == 404
    assert outcome_messages(response) == [issue(Msg.NOT_FOUND, id=role_id).diagnostics]


@pytest.mark.parametrize("key", ["Practitioner/97ZACB", "Practitioner/99ZZZS", "Practitioner/98ZZQJ", "Practitioner/91ZABY",
                                 "Practitioner/92ZZRE", "Practitioner/90ZZLP", "Organization/GZZ998-G", "Organization/G00001-G",
                                 "Organization/GZZ956-B", "Organization/GZZ991-D", "Location/FZZ961-K", "Location/FZZ999-B",
                                 "Location/FZZ941-D", "Location/FZZ958-K"])
def test_reference_data_holds_every_record_the_examples_name(mongo, key):
    assert mongo["reference_resources"].count_documents({"_id": key}) == 1


@pytest.mark.parametrize("dormant, live", [("Practitioner/90ZZGJ", "Practitioner/98ZZQJ"), ("Location/FZZ997-J", "Location/FZZ999-B")])
def test_dormant_ids_resolve_to_the_live_record(mongo, dormant, live):
    assert mongo["reference_resources"].find_one({"refs": dormant})["_id"] == live
