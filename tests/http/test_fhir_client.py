"""The server driven by fhirpy (https://github.com/beda-software/fhir-py), a FHIR client library written
elsewhere: create, read, update with If-Match, search with _include and paging, refresh and errors,
all through fhirpy's public API against the running server.

fhirpy's SyncFHIRClient sends ``Accept: application/fhir+json`` and bodies as ``application/json``;
it sends no If-Match of its own, so updates use a client whose extra headers carry it. Every HTTP
exchange is recorded with a requests response hook (fhirpy passes ``requests_config`` to requests),
to show what went over the wire next to what fhirpy made of it.
"""

from __future__ import annotations

import re
import typing as t
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from ..support import fresh_role

ROLE_ID = re.compile(r"R\d{8}-[A-Z]")
STATUS_REASON = "http://hl7.org.nz/fhir/StructureDefinition/practitionerRole-status-reason"
STATUS_REASON_CODES = "https://standards.digital.health.nz/ns/hpi-practitioner-role-status-reason-code"
WORK_PHONE = {"system": "phone", "value": "021 555 1234", "use": "work"}
CONFLICT = "Resource conflict, the version provided for the resource is not the current version"


class Wire:
    """fhirpy clients for the server, and every response they received (with its request)."""

    def __init__(self, server: t.Any, headers: dict[str, str]) -> None:
        self.server = server
        self.headers = headers
        self.responses: list[requests.Response] = []

    def client(self, **headers: str) -> SyncFHIRClient:
        return SyncFHIRClient(
            self.server.base_url,
            extra_headers={**self.headers, **headers},
            requests_config={"timeout": 30, "hooks": {"response": [self._record]}},
        )

    def _record(self, response: requests.Response, *args: t.Any, **kwargs: t.Any) -> None:
        self.responses.append(response)

    @property
    def last(self) -> requests.Response:
        return self.responses[-1]


@pytest.fixture(scope="module")
def headers(server) -> dict[str, str]:
    """The HPI's headers: a bearer token of the development client, its x-api-key, userid."""
    return server.headers()


@pytest.fixture
def wire(server, headers) -> Wire:
    return Wire(server, headers)


@pytest.fixture
def client(wire) -> SyncFHIRClient:
    return wire.client()


def create(client: SyncFHIRClient, **changes: t.Any):
    role = client.resource("PractitionerRole", **fresh_role(**changes))
    role.save()
    return role


def diagnostics(error: pytest.ExceptionInfo[OperationOutcome]) -> list[str]:
    return [i["diagnostics"] for i in error.value.resource["issue"]]


# --- create and read ---------------------------------------------------------------------------------

def test_create_gives_the_resource_its_id_and_first_version(client, wire, server):
    sent = fresh_role()
    role = client.resource("PractitionerRole", **sent)
    role.save()

    assert ROLE_ID.fullmatch(role.id)
    assert role["meta"]["versionId"] == "1"
    assert role["identifier"][-1]["value"] == role.id
    assert role["code"] == sent["code"]
    assert role["practitioner"].reference == "Practitioner/97ZACB"  # fhirpy made it a reference
    assert role["practitioner"]["display"] == "mx Ronny J Maunga"

    exchange = wire.last
    assert (exchange.request.method, exchange.status_code) == ("POST", 201)
    assert exchange.request.url == f"{server.base_url}/PractitionerRole"
    assert exchange.request.headers["Content-Type"] == "application/json"  # what requests' json= sends
    assert exchange.request.headers["Accept"] == "application/fhir+json"
    assert exchange.headers["Content-Type"].startswith("application/fhir+json")
    assert exchange.headers["Location"] == f"{server.base_url}/PractitionerRole/{role.id}/_history/1"


def test_read_by_reference_get_and_search(client):
    created = create(client)

    by_reference = client.reference("PractitionerRole", created.id).to_resource()
    assert by_reference.serialize() == created.serialize()

    as_dict = client.get("PractitionerRole", created.id)
    assert as_dict["id"] == created.id and as_dict["meta"]["versionId"] == "1"

    # The HPI requires the practitioner on every search (SPEC.md §3.4), so _id alone is not enough.
    found = client.resources("PractitionerRole").search(practitioner="97ZACB", _id=created.id).get()
    assert found.serialize() == created.serialize()
    first = client.resources("PractitionerRole").search(practitioner="97ZACB", _id=created.id).first()
    assert first is not None and first.id == created.id


def test_an_unknown_id_is_not_found(client, wire):
    with pytest.raises(ResourceNotFound) as error:
        client.reference("PractitionerRole", "R99999999-Z").to_resource()
    assert wire.last.status_code == 404
    assert "Invalid id: R99999999-Z" in str(error.value)


def test_a_search_without_practitioner_is_refused(client, wire):
    with pytest.raises(OperationOutcome) as error:
        client.resources("PractitionerRole").search(_id="R00000029-P").fetch()
    assert wire.last.status_code == 422
    assert diagnostics(error) == ["Practitioner required"]


# --- update with If-Match ----------------------------------------------------------------------------

def test_update_without_if_match_is_refused(client, wire):
    role = create(client)
    role["telecom"] = [WORK_PHONE]
    with pytest.raises(OperationOutcome) as error:
        role.save()  # fhirpy sends no If-Match by itself
    assert (wire.last.request.method, wire.last.status_code) == ("PUT", 428)
    assert "If-Match" not in wire.last.request.headers
    assert diagnostics(error) == ['An update needs an If-Match header with the version being updated, e.g. If-Match: W/"1"']
    assert client.get("PractitionerRole", role.id)["meta"]["versionId"] == "1"


def test_update_with_if_match_makes_version_2_and_a_stale_one_conflicts(client, wire, server):
    created = create(client)
    editor = wire.client(**{"If-Match": 'W/"1"'})
    role = editor.reference("PractitionerRole", created.id).to_resource()
    role["telecom"] = [WORK_PHONE]

    # SyncFHIRResource.update(); fhirpy 2.3.1's client.update(resource) sends the same PUT but then
    # fails to rebuild a SyncFHIRResource from the answer (TypeError), a fhirpy limitation.
    updated = role.update()
    assert (wire.last.request.method, wire.last.status_code) == ("PUT", 200)
    assert wire.last.request.url == f"{server.base_url}/PractitionerRole/{created.id}"
    assert wire.last.request.headers["If-Match"] == 'W/"1"'
    assert wire.last.headers["ETag"] == 'W/"2"'
    assert updated.id == created.id and updated["meta"]["versionId"] == "2"
    assert updated["telecom"] == [{**WORK_PHONE, "rank": 1}]
    assert client.get("PractitionerRole", created.id)["telecom"] == [{**WORK_PHONE, "rank": 1}]

    # The same If-Match again names version 1, which is no longer current.
    role["telecom"] = [{**WORK_PHONE, "value": "021 555 9999"}]
    with pytest.raises(OperationOutcome) as error:
        role.save()
    assert wire.last.status_code == 409
    assert diagnostics(error) == [CONFLICT]
    assert error.value.resource["issue"][0]["code"] == "conflict"
    current = client.get("PractitionerRole", created.id)
    assert current["meta"]["versionId"] == "2" and current["telecom"][0]["value"] == "021 555 1234"


def test_ending_a_role_with_a_status_reason(client, wire):
    created = create(client)
    role = wire.client(**{"If-Match": 'W/"1"'}).reference("PractitionerRole", created.id).to_resource()
    role["period"] = {"start": "2022-05-05", "end": "2023-01-31"}
    role["extension"] = [*role["extension"], {
        "url": STATUS_REASON,
        "valueCodeableConcept": {"coding": [{"system": STATUS_REASON_CODES, "code": "other", "display": "other"}]},
    }]
    role.save()

    assert role["meta"]["versionId"] == "2"
    assert role["active"] is False
    assert role["period"] == {"start": "2022-05-05", "end": "2023-01-31"}
    reasons = [e for e in role["extension"] if e["url"] == STATUS_REASON]
    assert [c["code"] for e in reasons for c in e["valueCodeableConcept"]["coding"]] == ["other"]
    assert client.reference("PractitionerRole", created.id).to_resource()["active"] is False


# --- refresh -----------------------------------------------------------------------------------------

def test_refresh_is_304_when_current_and_loads_a_newer_version(client, wire):
    created = create(client)
    role = client.reference("PractitionerRole", created.id).to_resource()

    role.refresh()
    assert wire.last.status_code == 304 and wire.last.content == b""
    assert wire.last.request.headers["If-None-Match"] == "1"  # fhirpy sends the bare versionId
    assert wire.last.headers["ETag"] == 'W/"1"'
    assert role["meta"]["versionId"] == "1"

    editor = wire.client(**{"If-Match": 'W/"1"'})
    newer = editor.reference("PractitionerRole", created.id).to_resource()
    newer["telecom"] = [WORK_PHONE]
    newer.save()

    role.refresh()
    assert wire.last.status_code == 200
    assert role["meta"]["versionId"] == "2"
    assert role["telecom"] == [{**WORK_PHONE, "rank": 1}]


# --- search: _include and paging ---------------------------------------------------------------------

def test_search_includes_the_practitioner(client, wire):
    created = create(client)
    search = client.resources("PractitionerRole").search(practitioner="97ZACB").include("PractitionerRole", "practitioner")

    before = len(wire.responses)
    assert created.id in [r.id for r in search.fetch_all()]  # PractitionerRoles only, over every page
    for page in wire.responses[before:]:  # the first page's URL is fhirpy's, the others the server's next links
        assert parse_qs(urlsplit(page.request.url).query)["_include"] == ["PractitionerRole:practitioner"]
        included = [e["fullUrl"] for e in page.json()["entry"] if e["search"]["mode"] == "include"]
        assert included == [f"{client.url}/Practitioner/97ZACB"]

    bundle = search.search(_id=created.id).fetch_raw()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    modes = {(e["search"]["mode"], e["resource"].resource_type, e["resource"].id) for e in bundle["entry"]}
    assert modes == {("match", "PractitionerRole", created.id), ("include", "Practitioner", "97ZACB")}
    # fetch() keeps only the PractitionerRoles; the included Practitioner is in the raw Bundle.
    assert [r.id for r in search.search(_id=created.id).fetch()] == [created.id]


def test_paging_follows_next_links(client, wire):
    ours = {create(client).id for _ in range(3)}
    search = client.resources("PractitionerRole").search(practitioner="97ZACB")
    total = search.count()
    assert total >= 3

    before = len(wire.responses)
    ids = [r.id for r in search.limit(2).fetch_all()]
    pages = wire.responses[before:]

    assert len(ids) == len(set(ids)) == total
    assert ours <= set(ids)
    assert len(pages) == (total + 1) // 2
    assert all(p.status_code == 200 for p in pages)
    queries = [parse_qs(urlsplit(p.request.url).query) for p in pages]
    assert all(q["_count"] == ["2"] and q["practitioner"] == ["97ZACB"] for q in queries)
    assert [q.get("_offset", ["0"])[0] for q in queries] == [str(2 * i) for i in range(len(pages))]


# --- validation errors -------------------------------------------------------------------------------

def test_a_role_without_practitioner_is_refused_with_the_hpi_message(client, wire):
    sent = fresh_role()
    del sent["practitioner"]
    role = client.resource("PractitionerRole", **sent)

    assert role.is_valid() is False  # $validate
    with pytest.raises(OperationOutcome) as error:
        role.is_valid(raise_exception=True)
    assert diagnostics(error) == ["hpi-person-id is required"]

    with pytest.raises(OperationOutcome) as error:
        role.save()
    assert (wire.last.request.method, wire.last.status_code) == ("POST", 422)
    issue = error.value.resource["issue"][0]
    assert issue["diagnostics"] == "hpi-person-id is required"
    assert issue["expression"] == ["PractitionerRole.practitioner"]
    assert issue["details"]["coding"][0]["code"] == "EM07201"
    assert role.id is None


def test_a_valid_role_passes_validate(client):
    role = client.resource("PractitionerRole", **fresh_role())
    assert role.is_valid() is True
