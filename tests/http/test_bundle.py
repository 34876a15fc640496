"""POST / with batch and transaction Bundles (fhir_server/http/bundle.py, FHIR http.html#transaction)."""

from __future__ import annotations

import copy
import uuid

import pytest

from fhir_server.http.bundle import MAX_CONDITIONAL_REFERENCES
from fhir_server.outcome import Msg, issue
from fhir_server.validation.json_body import Limits

from ..support import PERSON, fresh_cpn, fresh_role, outcome_messages, practitioner, stored_counts


def entry(method: str, url: str, resource: dict | None = None, full_url: str | None = None, **request: str) -> dict:
    out: dict = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        out["resource"] = resource
    if full_url:
        out["fullUrl"] = full_url
    return out


def bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_batch_entries_each_get_their_own_status(api, mongo):
    cpn = fresh_cpn()
    bad_role = fresh_role()
    del bad_role["practitioner"]
    response = api.post("/", bundle("batch",
                                    entry("POST", "Practitioner", practitioner(cpn)),
                                    entry("POST", "PractitionerRole", bad_role),
                                    entry("GET", f"Practitioner/{cpn}"),
                                    entry("GET", "Practitioner/00ZZZZ"),
                                    {"request": {"method": "PATCH", "url": "Practitioner"}}))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "200 OK", "404 Not Found", "400 Bad Request"]
    created = result["entry"][0]
    assert created["response"]["location"] == f"Practitioner/{cpn}/_history/1"
    assert created["response"]["etag"] == 'W/"1"'
    assert created["resource"]["id"] == cpn
    assert [i["diagnostics"] for i in result["entry"][1]["response"]["outcome"]["issue"]] == [issue(Msg.PRACTITIONER_REQUIRED).diagnostics]
    assert result["entry"][2]["resource"]["id"] == cpn
    assert mongo["reference_resources"].count_documents({"resource.id": cpn}) == 1


def test_transaction_resolves_urn_uuids_and_stores_everything(api, mongo):
    cpn, urn = fresh_cpn(), f"urn:uuid:{uuid.uuid4()}"
    role = fresh_role(practitioner={"reference": urn})
    # The role comes first in the Bundle: the server creates the practitioner before it.
    response = api.post("/", bundle("transaction",
                                    entry("POST", "PractitionerRole", role),
                                    entry("POST", "Practitioner", practitioner(cpn), full_url=urn)))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created", "201 Created"]
    stored_role = result["entry"][0]["resource"]
    assert stored_role["practitioner"]["reference"] == f"Practitioner/{cpn}"
    assert api.get(f"/PractitionerRole/{stored_role['id']}").status_code == 200
    assert mongo["reference_resources"].count_documents({"resource.id": cpn}) == 1


def test_a_failing_entry_rolls_the_whole_transaction_back(api, mongo):
    cpn, urn = fresh_cpn(), f"urn:uuid:{uuid.uuid4()}"
    good_role = fresh_role(practitioner={"reference": urn})
    bad_role = fresh_role(practitioner={"reference": urn}, period={"start": "2022-03-01", "end": "2022-02-01"})
    before = stored_counts(mongo), mongo["practitioner_role_versions"].count_documents({})
    response = api.post("/", bundle("transaction",
                                    entry("POST", "Practitioner", practitioner(cpn), full_url=urn),
                                    entry("POST", "PractitionerRole", good_role),
                                    entry("POST", "PractitionerRole", bad_role)))
    assert response.status_code == 422, response.text
    messages = outcome_messages(response)
    assert messages[0] == issue(Msg.TRANSACTION_FAILED, index=2, method="POST", url="PractitionerRole",
                                status="422 Unprocessable Entity").diagnostics
    assert issue(Msg.STATUS_REASON_REQUIRED).diagnostics in messages
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[2]"]
    # Nothing of it: not the practitioner, not the first role, not its reservation or version.
    assert mongo["reference_resources"].count_documents({"resource.id": cpn}) == 0
    assert (stored_counts(mongo), mongo["practitioner_role_versions"].count_documents({})) == before
    assert api.get(f"/Practitioner/{cpn}").status_code == 404


def test_a_failing_update_rolls_back_an_earlier_update(api):
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    changed = {**practitioner(cpn), "id": cpn, "name": [{"family": "Changed"}]}
    response = api.post("/", bundle("transaction",
                                    entry("PUT", f"Practitioner/{cpn}", changed, ifMatch='W/"1"'),
                                    entry("PUT", f"Practitioner/{cpn}", changed, ifMatch='W/"7"')))
    assert response.status_code == 409, response.text
    current = api.get(f"/Practitioner/{cpn}").json()
    assert current["meta"]["versionId"] == "1" and current["name"] == [{"family": "Bundle", "given": ["Test"]}]


def test_conditional_references_are_resolved(api):
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    role = fresh_role(practitioner={"reference": f"Practitioner?identifier={PERSON}|{cpn}"})
    response = api.post("/", bundle("transaction", entry("POST", "PractitionerRole", role)))
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["resource"]["practitioner"]["reference"] == f"Practitioner/{cpn}"


def test_a_conditional_reference_matching_nothing_fails_the_transaction(api, mongo):
    reference = f"Practitioner?identifier={PERSON}|{fresh_cpn()}"
    before = stored_counts(mongo)
    response = api.post("/", bundle("transaction", entry("POST", "PractitionerRole", fresh_role(practitioner={"reference": reference}))))
    assert response.status_code == 412
    assert outcome_messages(response)[1] == issue(Msg.REFERENCE_UNRESOLVED, reference=reference, count=0).diagnostics
    assert stored_counts(mongo) == before


def test_conditional_create_in_a_transaction(api):
    cpn = fresh_cpn()
    condition = f"identifier={PERSON}|{cpn}"
    body = bundle("transaction", entry("POST", "Practitioner", practitioner(cpn), ifNoneExist=condition))
    assert api.post("/", body).json()["entry"][0]["response"]["status"] == "201 Created"
    assert api.post("/", body).json()["entry"][0]["response"]["status"] == "200 OK"


def test_too_many_entries_is_413_and_stores_nothing(api, mongo, server):
    limit = int(server.env.get("MAX_BUNDLE_ENTRIES", 100))
    entries = [entry("GET", "Practitioner/91ZABY")] * (limit + 1)
    for kind in ("batch", "transaction"):
        response = api.post("/", bundle(kind, *entries))
        assert response.status_code == 413
        assert outcome_messages(response) == [issue(Msg.BUNDLE_TOO_LARGE, count=limit + 1, limit=limit).diagnostics]


@pytest.mark.parametrize("body", [
    {"resourceType": "Bundle", "type": "collection"},
    {"resourceType": "Parameters"},
    [1, 2],
])
def test_only_batch_or_transaction_bundles(api, body):
    response = api.post("/", body)
    assert response.status_code == 400
    assert outcome_messages(response) == [issue(Msg.BUNDLE_TYPE).diagnostics]


def test_a_malformed_entry_fails_a_transaction_with_400(api, mongo):
    cpn = fresh_cpn()
    response = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn)),
                                    entry("POST", "https://elsewhere.example/Practitioner", practitioner(fresh_cpn()))))
    assert response.status_code == 400
    assert "request.url must be relative" in outcome_messages(response)[0]
    assert mongo["reference_resources"].count_documents({"resource.id": cpn}) == 0


def test_entries_need_the_callers_credentials(api):
    response = api.session.post(api.base + "/", json=bundle("batch", entry("GET", "Practitioner/91ZABY")),
                                headers={"x-api-key": "wrong", "Content-Type": "application/fhir+json"})
    assert response.status_code == 403


def test_an_empty_transaction_answers_an_empty_response(api):
    result = api.post("/", bundle("transaction")).json()
    assert result["type"] == "transaction-response" and "entry" not in result


def test_entries_are_answered_in_request_order(api):
    cpn = fresh_cpn()
    role = copy.deepcopy(fresh_role())
    response = api.post("/", bundle("transaction", entry("GET", "Practitioner/91ZABY"), entry("POST", "Practitioner", practitioner(cpn)),
                                    entry("POST", "PractitionerRole", role)))
    assert response.status_code == 200, response.text
    types = [e["resource"]["resourceType"] for e in response.json()["entry"]]
    assert types == ["Practitioner", "Practitioner", "PractitionerRole"]


# --- what one request may cost --------------------------------------------------------------------

# Spellings of the Bundle endpoint itself (POST [base]): each routes there once decoded, its dot
# segments resolved or its slashes merged.
NESTED_URLS = ["", "/", "?", "?x=1", "./", "%2F", "//", "/?", "#", "?#x", "%2f?_format=json", "PractitionerRole/..", "..", "/./"]


def test_an_entry_that_targets_the_bundle_endpoint_is_refused_in_a_batch(api, mongo):
    cpn = fresh_cpn()
    inner = bundle("batch", entry("POST", "Practitioner", practitioner(cpn)), entry("GET", "Practitioner/91ZABY"))
    response = api.post("/", bundle("batch", *[entry("POST", url, inner) for url in NESTED_URLS],
                                    entry("POST", api.base + "/", inner), entry("POST", " / ", inner)))
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["400 Bad Request"] * (len(NESTED_URLS) + 2)
    for index, (url, answered) in enumerate(zip(NESTED_URLS, entries, strict=False)):
        assert [i["diagnostics"] for i in answered["response"]["outcome"]["issue"]] == [
            issue(Msg.BUNDLE_NESTED, index=index, url=url).diagnostics], url
    for answered in entries[len(NESTED_URLS):]:  # not relative to the base at all
        assert answered["response"]["outcome"]["issue"][0]["diagnostics"].startswith("Bundle.entry[")
    assert mongo["reference_resources"].count_documents({"resource.id": cpn}) == 0


@pytest.mark.parametrize("url", ["", "?", "%2F", "./"])
def test_a_transaction_nested_in_a_transaction_is_refused_whole(api, mongo, url):
    cpn, inner_cpn = fresh_cpn(), fresh_cpn()
    inner = bundle("transaction", entry("POST", "Practitioner", practitioner(inner_cpn)))
    response = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn)), entry("POST", url, inner)))
    assert response.status_code == 400, response.text
    assert outcome_messages(response) == [
        issue(Msg.TRANSACTION_FAILED, index=1, method="POST", url=url, status="400 Bad Request").diagnostics,
        issue(Msg.BUNDLE_NESTED, index=1, url=url).diagnostics]
    assert mongo["reference_resources"].count_documents({"resource.id": {"$in": [cpn, inner_cpn]}}) == 0


def test_a_duplicate_inside_a_transaction_is_what_a_single_create_answers(api, mongo):
    role = fresh_role()
    single = api.post("/PractitionerRole", role)
    assert single.status_code == 201, single.text
    before = stored_counts(mongo)
    again = api.post("/PractitionerRole", role)
    cpn = fresh_cpn()
    response = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(cpn)),
                                    entry("POST", "PractitionerRole", role)))
    assert (again.status_code, response.status_code) == (422, 422), response.text
    assert outcome_messages(again) == [issue(Msg.DUPLICATE).diagnostics]
    assert outcome_messages(response)[1:] == [issue(Msg.DUPLICATE).diagnostics]
    assert stored_counts(mongo) == before
    assert mongo["reference_resources"].count_documents({"resource.id": cpn}) == 0


def test_two_creates_of_one_role_in_a_transaction_are_a_duplicate(api, mongo):
    role = fresh_role()
    before = stored_counts(mongo)
    response = api.post("/", bundle("transaction", entry("POST", "PractitionerRole", role), entry("POST", "PractitionerRole", role)))
    assert response.status_code == 422, response.text
    assert outcome_messages(response)[1:] == [issue(Msg.DUPLICATE).diagnostics]
    assert stored_counts(mongo) == before


def test_an_identifier_in_use_inside_a_transaction_is_what_a_single_create_answers(api, mongo):
    cpn, other = fresh_cpn(), fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    single = api.post("/Practitioner", practitioner(cpn))
    response = api.post("/", bundle("transaction", entry("POST", "Practitioner", practitioner(other)),
                                    entry("POST", "Practitioner", practitioner(cpn))))
    assert (single.status_code, response.status_code) == (422, 422), response.text
    assert outcome_messages(response)[1:] == outcome_messages(single)
    assert mongo["reference_resources"].count_documents({"resource.id": other}) == 0


def test_an_entry_with_too_many_conditional_references_is_refused_without_searching(api, mongo):
    # Each a search of its own; a resource of 1 MB could hold thousands, all resolved for one entry.
    conditions = [{"url": f"https://example.org/ext{i}", "valueReference": {"reference": f"Practitioner?identifier={PERSON}|{fresh_cpn()}"}}
                  for i in range(MAX_CONDITIONAL_REFERENCES + 1)]
    before = stored_counts(mongo)
    for kind, status in (("batch", 200), ("transaction", 400)):
        response = api.post("/", bundle(kind, entry("POST", "PractitionerRole", fresh_role(extension=conditions))))
        assert response.status_code == status, response.text
        answered = response.json() if kind == "transaction" else response.json()["entry"][0]["response"]["outcome"]
        assert issue(Msg.BUNDLE_TOO_MANY_CONDITIONS, index=0, limit=MAX_CONDITIONAL_REFERENCES).diagnostics in [
            i["diagnostics"] for i in answered["issue"]]
    assert stored_counts(mongo) == before


def test_a_resource_past_the_size_limits_is_refused_before_its_conditional_references_are_searched(api):
    limit = Limits().max_array_items
    unresolvable = {"url": "https://example.org/ext", "valueReference": {"reference": f"Practitioner?identifier={PERSON}|{fresh_cpn()}"}}
    response = api.post("/", bundle("batch", entry("POST", "PractitionerRole", fresh_role(extension=[unresolvable] * (limit + 1)))))
    answered = response.json()["entry"][0]["response"]
    assert answered["status"] == "400 Bad Request"
    assert [i["diagnostics"] for i in answered["outcome"]["issue"]] == [
        issue(Msg.TOO_MANY_ITEMS, element="PractitionerRole.extension", count=limit + 1, limit=limit).diagnostics]


def test_an_entry_may_search_by_an_identifier_with_its_system_url(api):
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    response = api.post("/", bundle("batch", entry("GET", f"Practitioner?identifier={PERSON}|{cpn}")))
    answered = response.json()["entry"][0]
    assert answered["response"]["status"] == "200 OK", answered
    assert [e["resource"]["id"] for e in answered["resource"]["entry"]] == [cpn]
