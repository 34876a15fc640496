"""History's _since and _at (R4 http.html#history), and its refusal of parameters it does not take."""

from __future__ import annotations

import pytest

from fhir_server.instants import parse_instant
from fhir_server.outcome import Msg, issue

from ..support import fresh_role, outcome_messages


def versions(bundle: dict) -> list[str]:
    return [e["resource"]["meta"]["versionId"] for e in bundle.get("entry", [])]


def links(bundle: dict) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


@pytest.fixture(scope="module")
def role(api) -> list[dict]:
    """One role in three versions: what each was when written."""
    written = [api.create(fresh_role()).json()]
    for n in range(2):
        body = {**written[-1], "telecom": [{"system": "phone", "value": f"021 555 04{n:02d}", "use": "work"}]}
        response = api.put(f"/PractitionerRole/{written[-1]['id']}", body, if_match=written[-1]["meta"]["versionId"])
        assert response.status_code == 200, response.text
        written.append(response.json())
    return written


def history(api, role_id: str | None, **params: str):
    return api.get(f"/PractitionerRole/{role_id}/_history" if role_id else "/PractitionerRole/_history", params=params)


def test_since_keeps_the_versions_written_from_then_on(api, role):
    since = role[1]["meta"]["lastUpdated"]
    bundle = history(api, role[0]["id"], _since=since, _total="accurate").json()
    assert versions(bundle) == ["3", "2"] and bundle["total"] == 2
    assert "_since=" in links(bundle)["self"]
    later = history(api, role[0]["id"], _since="2999-01-01T00:00:00Z").json()
    assert versions(later) == []


def test_since_across_roles_and_its_next_links(api, role):
    since = role[1]["meta"]["lastUpdated"]
    page = history(api, None, _since=since, _count="1").json()
    seen: list[str] = []
    while True:
        for e in page.get("entry", []):
            assert parse_instant(e["resource"]["meta"]["lastUpdated"]) >= parse_instant(since)
            seen.append(f"{e['resource']['id']}/{e['resource']['meta']['versionId']}")
        if "next" not in links(page):
            break
        assert "_since=" in links(page)["next"]
        page = api.session.get(links(page)["next"], timeout=30).json()
    assert {f"{role[0]['id']}/2", f"{role[0]['id']}/3"} <= set(seen)
    assert f"{role[0]['id']}/1" not in seen


def test_at_keeps_the_versions_current_then(api, role):
    role_id = role[0]["id"]
    assert versions(history(api, role_id, _at=role[0]["meta"]["lastUpdated"]).json()) == ["1"]
    assert versions(history(api, role_id, _at=role[1]["meta"]["lastUpdated"]).json()) == ["2"]
    assert versions(history(api, role_id, _at="2999-01-01T00:00:00Z").json()) == ["3"]  # the current one
    assert versions(history(api, role_id, _at="2001").json()) == []  # before the role was created
    year = role[0]["meta"]["lastUpdated"][:4]
    assert versions(history(api, role_id, _at=year).json()) == ["3", "2", "1"]


def test_at_and_since_together(api, role):
    bundle = history(api, role[0]["id"], _at=role[0]["meta"]["lastUpdated"][:4], _since=role[2]["meta"]["lastUpdated"]).json()
    assert versions(bundle) == ["3"]


def test_at_across_all_roles_is_refused(api):
    response = history(api, None, _at="2026")
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.HISTORY_AT_ONE_ROLE).diagnostics]


@pytest.mark.parametrize("name, value, msg", [
    ("_since", "2026-01-01", Msg.HISTORY_SINCE_INVALID), ("_since", "yesterday", Msg.HISTORY_SINCE_INVALID),
    ("_since", "2026-02-30T00:00:00Z", Msg.HISTORY_SINCE_INVALID), ("_at", "ge2026", Msg.HISTORY_AT_INVALID),
    ("_at", "soon", Msg.HISTORY_AT_INVALID),
])
def test_unreadable_values_are_refused(api, role, name, value, msg):
    response = history(api, role[0]["id"], **{name: value})
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(msg, value=value).diagnostics]


@pytest.mark.parametrize("prefer", [None, "handling=strict", "handling=lenient"])
@pytest.mark.parametrize("path_role", [True, False])
def test_parameters_history_does_not_take_are_refused_however_handled(api, role, prefer, path_role):
    # A history Bundle has no place for a warning, and ignoring _list (or _sinse) would serve more.
    headers = {"Prefer": prefer} if prefer else {}
    response = api.get(f"/PractitionerRole/{role[0]['id']}/_history" if path_role else "/PractitionerRole/_history",
                       params={"_sinse": "2026-01-01T00:00:00Z", "_list": "x"}, headers=headers)
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.HISTORY_PARAM_UNSUPPORTED, name="_sinse").diagnostics,
                                          issue(Msg.HISTORY_PARAM_UNSUPPORTED, name="_list").diagnostics]


def test_format_and_pretty_are_still_taken(api, role):
    response = history(api, role[0]["id"], _format="json", _pretty="true")
    assert response.status_code == 200 and versions(response.json()) == ["3", "2", "1"]
