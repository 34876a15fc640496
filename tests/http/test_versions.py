"""Versions of a PractitionerRole (SPEC.md §3.7): vread, instance and type history, If-None-Match."""

from __future__ import annotations

import pytest

from fhir_server.outcome import Msg, issue

from ..support import fresh_role, outcome_messages


@pytest.fixture
def three_versions(api) -> list[dict]:
    """A role created, then updated twice."""
    versions = [api.create(fresh_role()).json()]
    for i in (1, 2):
        body = {**versions[-1], "telecom": [{"system": "phone", "value": f"021 555 020{i}", "use": "work"}]}
        response = api.put(f"/PractitionerRole/{body['id']}", body, if_match=str(i))
        assert response.status_code == 200
        versions.append(response.json())
    return versions


def test_every_version_can_be_read(api, three_versions):
    role_id = three_versions[0]["id"]
    for n, version in enumerate(three_versions, start=1):
        response = api.get(f"/PractitionerRole/{role_id}/_history/{n}")
        assert response.status_code == 200
        assert response.json() == version
        assert response.headers["ETag"] == f'W/"{n}"'
        assert response.headers["Last-Modified"]


@pytest.mark.parametrize("vid", ["4", "0", "x", "99999999999999999999999"])
def test_a_version_that_does_not_exist_is_404(api, three_versions, vid):
    role_id = three_versions[0]["id"]
    response = api.get(f"/PractitionerRole/{role_id}/_history/{vid}")
    assert response.status_code == 404
    assert outcome_messages(response) == [issue(Msg.VERSION_NOT_FOUND, type="PractitionerRole", id=role_id, vid=vid).diagnostics]


def test_a_version_of_an_unknown_role_is_404_for_the_role(api):
    response = api.get("/PractitionerRole/R99999999-A/_history/1")
    assert response.status_code == 404
    assert outcome_messages(response) == [issue(Msg.NOT_FOUND, id="R99999999-A").diagnostics]


def test_instance_history_lists_versions_newest_first(api, three_versions):
    role_id = three_versions[0]["id"]
    bundle = api.get(f"/PractitionerRole/{role_id}/_history").json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "history"
    assert "total" not in bundle  # counted only when asked: see test_history.py
    assert [e["resource"] for e in bundle["entry"]] == three_versions[::-1]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT", "POST"]
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert all(e["fullUrl"].endswith(f"/PractitionerRole/{role_id}") for e in bundle["entry"])


def test_instance_history_pages(api, three_versions):
    role_id = three_versions[0]["id"]
    first = api.get(f"/PractitionerRole/{role_id}/_history", params={"_count": 2}).json()
    assert [e["resource"]["meta"]["versionId"] for e in first["entry"]] == ["3", "2"]
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    second = api.session.get(links["next"], timeout=10).json()
    assert [e["resource"]["meta"]["versionId"] for e in second["entry"]] == ["1"]
    assert "next" not in {link["relation"] for link in second["link"]}


def test_history_of_an_unknown_role_is_404(api):
    assert api.get("/PractitionerRole/R99999999-A/_history").status_code == 404


def test_type_history_lists_the_newest_changes_first(api, three_versions):
    bundle = api.get("/PractitionerRole/_history", params={"_count": 3}).json()
    assert bundle["type"] == "history"
    stamps = [e["resource"]["meta"]["lastUpdated"] for e in bundle["entry"]]
    assert stamps == sorted(stamps, reverse=True)
    assert bundle["entry"][0]["resource"] == three_versions[-1]


@pytest.mark.parametrize("tag", ['W/"{v}"', '"{v}"', "{v}"])
def test_if_none_match_with_the_current_version_is_304(api, three_versions, tag):
    role_id = three_versions[0]["id"]
    response = api.get(f"/PractitionerRole/{role_id}", headers={"If-None-Match": tag.format(v=3)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == 'W/"3"'


def test_if_none_match_with_an_old_version_gets_the_resource(api, three_versions):
    role_id = three_versions[0]["id"]
    response = api.get(f"/PractitionerRole/{role_id}", headers={"If-None-Match": 'W/"2"'})
    assert response.status_code == 200
    assert response.json() == three_versions[-1]


def test_seeded_roles_have_their_one_version(api):
    bundle = api.get("/PractitionerRole/R00000012-G/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["13"]
    assert api.get("/PractitionerRole/R00000012-G/_history/13").status_code == 200
