"""HPI authentication (SPEC.md §6) and API keys managed with the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from fhir_server.outcome import Msg, issue

from ..support import DATA, fresh_role, outcome_messages


def cli(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server", *args], env=server.env,
                          capture_output=True, text=True, timeout=120, check=True)


def test_missing_api_key_is_forbidden(api):
    response = requests.post(api.base + "/PractitionerRole", json=fresh_role(), headers={"userid": "99ZZZS"}, timeout=10)
    assert response.status_code == 403
    assert outcome_messages(response) == ["Forbidden"] == [issue(Msg.FORBIDDEN).diagnostics]


def test_unknown_api_key_is_forbidden(api):
    response = requests.get(api.base + "/PractitionerRole/R00000029-P", headers={"x-api-key": "hpi_guess", "userid": "u"}, timeout=10)
    assert response.status_code == 403


def test_missing_userid_is_401_as_the_ig_shows(api):
    response = requests.get(api.base + "/PractitionerRole/R00000029-P", headers={"x-api-key": api.session.headers["x-api-key"]}, timeout=10)
    assert response.status_code == 401
    assert response.json() == json.loads((DATA / "OperationOutcome-missing-userid-header.json").read_text())


def test_metadata_needs_no_credentials(api):
    response = requests.get(api.base + "/metadata", timeout=10)
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"  # its content: test_metadata.py


def test_the_development_key_was_made_because_the_database_had_none(server, mongo):
    keys = list(mongo["api_keys"].find())
    assert [k["name"] for k in keys] == ["development"]
    assert server.api_key not in json.dumps(keys, default=str)  # only its hash is stored


def test_keys_are_created_listed_and_revoked_with_the_cli(server, api):
    created = cli(server, "api-key", "create", "integration-test").stdout.split()
    key_id, key = created[0], created[1]
    headers = {"x-api-key": key, "userid": "99ZZZS"}
    assert requests.get(api.base + "/PractitionerRole/R00000029-P", headers=headers, timeout=10).status_code == 200
    listing = cli(server, "api-key", "list").stdout
    assert key_id in listing and "integration-test" in listing and key not in listing
    cli(server, "api-key", "revoke", key_id)
    assert "revoked" in cli(server, "api-key", "list").stdout
    assert requests.get(api.base + "/PractitionerRole/R00000029-P", headers=headers, timeout=10).status_code == 403
