"""History pages (FHIR http.html#history, search.html#paging): read by key along the history index,
a total only when asked, a next link carrying an opaque ``_page``."""

from __future__ import annotations

import base64
import json

import pytest

from fhir_server.instants import parse_instant
from fhir_server.outcome import Msg, issue

from ..support import fresh_role, outcome_messages


def links(bundle: dict) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


def version_keys(bundle: dict) -> list[str]:
    return [f"{e['resource']['id']}/{e['resource']['meta']['versionId']}" for e in bundle.get("entry", [])]


def token(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def update(api, role: dict, n: int) -> dict:
    body = {**role, "telecom": [{"system": "phone", "value": f"021 555 03{n:02d}", "use": "work"}]}
    response = api.put(f"/PractitionerRole/{role['id']}", body, if_match=role["meta"]["versionId"])
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def role(api) -> dict:
    response = api.create(fresh_role())
    assert response.status_code == 201, response.text
    return response.json()


def test_type_history_walks_every_version_once_in_order_while_versions_are_written(api, mongo, role):
    for n in range(6):  # with the seeded roles' (years old), more than two pages whatever ran before
        role = update(api, role, 30 + n)
    before = {d["_id"] for d in mongo["practitioner_role_versions"].find({}, {"_id": 1})}
    seen: list[str] = []
    stamps: list = []
    written: list[str] = []
    page = api.get("/PractitionerRole/_history", params={"_count": 3}).json()
    while True:
        seen += version_keys(page)
        stamps += [parse_instant(e["resource"]["meta"]["lastUpdated"]) for e in page.get("entry", [])]
        assert "previous" not in links(page)
        if "next" not in links(page):
            break
        role = update(api, role, len(written))  # a new version between two pages
        written.append(f"{role['id']}/{role['meta']['versionId']}")
        page = api.session.get(links(page)["next"], timeout=30).json()
    assert len(seen) == len(set(seen))  # none twice
    assert before <= set(seen)  # every version there when the walk began
    assert not set(seen) & set(written)  # newer than the first page: the next walk's
    assert stamps == sorted(stamps, reverse=True)
    assert len(written) >= 2
    for _ in range(3):  # each worker, whatever it served before, starts with what was written since
        newest = api.get("/PractitionerRole/_history", params={"_count": len(written)}).json()
        assert version_keys(newest) == written[::-1]


def test_entries_of_one_instant_are_in_id_order_across_pages(api, mongo):
    # Seeded records keep their own lastUpdated; a page boundary may fall between versions of one instant.
    walked: list[str] = []
    url = None
    while True:
        page = api.session.get(url, timeout=30).json() if url else api.get("/PractitionerRole/_history", params={"_count": 1}).json()
        walked += version_keys(page)
        url = links(page).get("next")
        if url is None or len(walked) >= 30:
            break
    stored = {d["_id"]: d["updated"] for d in mongo["practitioner_role_versions"].find({"_id": {"$in": walked}})}
    assert walked == sorted(walked, key=lambda k: (-stored[k].timestamp(), k))


def test_instance_history_pages_by_key(api, role):
    for n in range(4):
        role = update(api, role, 10 + n)
    first = api.get(f"/PractitionerRole/{role['id']}/_history", params={"_count": 2}).json()
    assert [k.split("/")[1] for k in version_keys(first)] == ["5", "4"]
    assert set(links(first)) == {"self", "next"} and "_page=" in links(first)["next"]
    second = api.session.get(links(first)["next"], timeout=30).json()
    third = api.session.get(links(second)["next"], timeout=30).json()
    assert [k.split("/")[1] for k in version_keys(second) + version_keys(third)] == ["3", "2", "1"]
    assert set(links(third)) == {"self"}
    assert links(second)["self"] == links(first)["next"]


@pytest.mark.parametrize("path", ["/PractitionerRole/{id}/_history", "/PractitionerRole/_history"])
def test_a_total_only_when_asked(api, mongo, role, path):
    update(api, role, 20)
    url = path.format(id=role["id"])
    for value in (None, "none", "estimate"):
        bundle = api.get(url, params={"_count": 1, **({"_total": value} if value else {})}).json()
        assert "total" not in bundle, value
    counted = api.get(url, params={"_count": 1, "_total": "accurate"}).json()
    query = {"role": role["id"]} if "{id}" in path else {}
    assert counted["total"] == mongo["practitioner_role_versions"].count_documents(query)
    assert "_total=accurate" in links(counted)["next"]
    assert api.session.get(links(counted)["next"], timeout=30).json()["total"] == counted["total"]


def test_count_zero_gives_no_entries_and_no_next(api, role):
    bundle = api.get("/PractitionerRole/_history", params={"_count": 0, "_total": "accurate"}).json()
    assert "entry" not in bundle and bundle["total"] >= 1
    assert set(links(bundle)) == {"self"}


@pytest.mark.parametrize("path, value", [
    ("/PractitionerRole/_history", "x"),
    ("/PractitionerRole/_history", "!!!!"),
    ("/PractitionerRole/_history", token([5])),  # a key of one role's history
    ("/PractitionerRole/_history", token([1, 2])),
    ("/PractitionerRole/_history", token([10**20, "R00000012-G/13"])),  # beyond the calendar
    ("/PractitionerRole/_history", token([[[[1]]], "a"])),
    ("/PractitionerRole/_history", "W" * 300),
    ("/PractitionerRole/R00000012-G/_history", token([1700000000000, "R00000012-G/13"])),
    ("/PractitionerRole/R00000012-G/_history", token([0])),
    ("/PractitionerRole/R00000012-G/_history", token([True])),
    ("/PractitionerRole/R00000012-G/_history", base64.urlsafe_b64encode(b"\xff\xfe").decode()),
])
def test_a_malformed_page_token_is_400(api, path, value):
    response = api.get(path, params={"_page": value})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert outcome_messages(response) == [issue(Msg.PAGE_TOKEN_INVALID, value=value).diagnostics]


def test_history_refuses_offset_and_unknown_totals(api):
    offset = api.get("/PractitionerRole/_history", params={"_offset": "10"})
    assert offset.status_code == 400
    assert outcome_messages(offset) == [Msg.HISTORY_OFFSET_UNSUPPORTED.value.text]
    total = api.get("/PractitionerRole/R00000012-G/_history", params={"_total": "maybe"})
    assert total.status_code == 400
    assert outcome_messages(total) == [issue(Msg.TOTAL_INVALID, value="maybe").diagnostics]


def test_history_reads_through_an_index_in_its_order(mongo):
    indexes = {name: info["key"] for name, info in mongo["practitioner_role_versions"].index_information().items()}
    assert [("updated", -1), ("_id", 1)] in indexes.values()
    assert [("role", 1), ("vid", -1)] in indexes.values()
    assert [("updated", -1)] not in indexes.values()  # the one it sorted by before, now redundant
