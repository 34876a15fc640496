"""Conditional reads (R4 http.html#cread): If-Modified-Since and If-None-Match on read and vread
answer 304 Not Modified, without a body but with the version's ETag."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from ..support import fresh_role


def http_date(when: dt.datetime) -> str:
    return email.utils.format_datetime(when.astimezone(dt.timezone.utc), usegmt=True)


@pytest.fixture(scope="module")
def role(api) -> dict:
    created = api.create(fresh_role())
    assert created.status_code == 201
    return {"id": created.json()["id"], "last_modified": email.utils.parsedate_to_datetime(created.headers["Last-Modified"])}


@pytest.mark.parametrize("path", ["/PractitionerRole/{id}", "/PractitionerRole/{id}/_history/1"])
@pytest.mark.parametrize("shift, status", [(0, 304), (3600, 304), (-1, 200), (-86400, 200)])
def test_if_modified_since(api, role, path, shift, status):
    since = http_date(role["last_modified"] + dt.timedelta(seconds=shift))
    response = api.get(path.format(id=role["id"]), headers={"If-Modified-Since": since})
    assert response.status_code == status
    assert response.headers["ETag"] == 'W/"1"'
    if status == 304:
        assert response.content == b""
    else:
        assert response.json()["id"] == role["id"]
        assert response.headers["Last-Modified"] == http_date(role["last_modified"])


@pytest.mark.parametrize("value", ["yesterday", "", "Mon, 99 Foo 2020 00:00:00 GMT"])
def test_an_unreadable_date_is_ignored(api, role, value):
    response = api.get(f"/PractitionerRole/{role['id']}", headers={"If-Modified-Since": value})
    assert response.status_code == 200 and response.json()["id"] == role["id"]


def test_if_none_match_wins_over_if_modified_since(api, role):
    later = http_date(role["last_modified"] + dt.timedelta(days=1))
    other_version = api.get(f"/PractitionerRole/{role['id']}", headers={"If-None-Match": 'W/"7"', "If-Modified-Since": later})
    assert other_version.status_code == 200
    same_version = api.get(f"/PractitionerRole/{role['id']}", headers={"If-None-Match": 'W/"1"', "If-Modified-Since": "yesterday"})
    assert same_version.status_code == 304 and same_version.content == b""


def test_a_newer_version_is_sent(api):
    created = api.create(fresh_role()).json()
    since = http_date(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2))
    body = {**created, "telecom": [{"system": "phone", "value": "021 555 0403", "use": "work"}]}
    assert api.put(f"/PractitionerRole/{created['id']}", body, if_match="1").status_code == 200
    response = api.get(f"/PractitionerRole/{created['id']}", headers={"If-Modified-Since": since})
    assert response.status_code == 200 and response.json()["meta"]["versionId"] == "2"
    kept = http_date(email.utils.parsedate_to_datetime(response.headers["Last-Modified"]))
    assert api.get(f"/PractitionerRole/{created['id']}", headers={"If-Modified-Since": kept}).status_code == 304


def test_reference_resources_too(api):
    read = api.get("/Organization/GZZ956-B")
    assert read.status_code == 200
    again = api.get("/Organization/GZZ956-B", headers={"If-Modified-Since": read.headers["Last-Modified"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == read.headers["ETag"]
