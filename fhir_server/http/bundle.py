"""``POST /``: batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction).

Each entry runs through the server's own routes, as if sent alone with the outer request's headers,
so it meets exactly the rules, statuses and messages of that interaction. A batch answers every entry
with its own status. A transaction runs in one database transaction, in FHIR's order, with
``urn:uuid`` fullUrls and conditional references (``Practitioner?identifier=…``) resolved into
``Type/id``; the first entry that fails rolls everything back and its status and OperationOutcome
answer the whole request.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, request

from .. import exact_json
from ..outcome import Issue, Msg, issue, operation_outcome
from ..service.bundle import Request, conditional_references, read_bundle, transaction_order, with_references
from .bundles import bundle
from .envelope import in_plain_api
from .incoming import body, context
from .rate_limits import BUNDLE_ENTRY
from .responses import fhir_response

bp = Blueprint("bundle", __name__)
PLAIN_API_REFUSED = "request.url must be a FHIR interaction; the plain-JSON API answers only requests of its own"
# What an entry's request takes from the outer request.
_PASSED_ON = ("x-api-key", "userid", "X-Correlation-Id", "Prefer")


@dataclass
class Outcome:
    status: int
    headers: dict[str, str]
    body: dict[str, t.Any] | None

    @property
    def failed(self) -> bool:
        return self.status >= 400

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"


class _Failed(Exception):
    def __init__(self, request: Request, outcome: Outcome) -> None:
        self.request, self.outcome = request, outcome


@bp.post("/")
def batch_or_transaction() -> Response:
    kind, entries = read_bundle(body(), current_app.extensions["settings"].max_bundle_entries)
    if kind == "batch":
        return fhir_response(_response_bundle("batch-response", [_run_alone(e) for e in entries]))
    invalid = [e for e in entries if isinstance(e, Issue)]
    if invalid:
        return fhir_response(operation_outcome(invalid), 400)
    requests = t.cast(list[Request], entries)
    try:
        with context().store.transaction():
            outcomes = _run_transaction(requests)
    except _Failed as failed:
        return _transaction_failed(failed)
    return fhir_response(_response_bundle("transaction-response", [outcomes[r.index] for r in requests]))


def _run_alone(entry: Request | Issue) -> Outcome:
    if isinstance(entry, Issue):
        return Outcome(entry.status, {}, operation_outcome([entry]))
    try:
        resolved, problem = _resolve_conditions(entry)
        if problem is not None:
            return problem
        return _dispatch(entry, with_references(entry.resource, resolved) if entry.resource is not None else None)
    except Exception:  # one entry's failure is its own; the others stand
        current_app.logger.exception("batch entry %d failed", entry.index)
        return Outcome(500, {}, operation_outcome([issue(Msg.INTERNAL)]))


def _run_transaction(requests: list[Request]) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    created: dict[str, str] = {}  # fullUrl → Type/id
    for entry in transaction_order(requests):
        resolved, problem = _resolve_conditions(entry)
        if problem is not None:
            raise _Failed(entry, problem)
        outcome = _dispatch(entry, with_references(entry.resource, {**created, **resolved}) if entry.resource is not None else None)
        if outcome.failed:
            raise _Failed(entry, outcome)
        if entry.full_url and outcome.body and "id" in outcome.body and entry.method == "POST":
            created[entry.full_url] = f"{outcome.body['resourceType']}/{outcome.body['id']}"
        outcomes[entry.index] = outcome
    return outcomes


def _resolve_conditions(entry: Request) -> tuple[dict[str, str], Outcome | None]:
    """Each conditional reference of the entry's resource, searched for: it must match exactly one record."""
    resolved = {}
    for reference in conditional_references(entry.resource):
        found = _dispatch(Request(entry.index, "GET", reference, None, None), None)
        matches = [e["resource"] for e in (found.body or {}).get("entry", []) if e.get("search", {}).get("mode") == "match"]
        if found.failed:
            return {}, found
        if found.body is None or found.body.get("total") != 1 or len(matches) != 1:
            problem = issue(Msg.REFERENCE_UNRESOLVED, f"Bundle.entry[{entry.index}].resource", reference=reference,
                            count=(found.body or {}).get("total", 0))
            return {}, Outcome(problem.status, {}, operation_outcome([problem]))
        resolved[reference] = f"{matches[0]['resourceType']}/{matches[0]['id']}"
    return resolved, None


def _dispatch(entry: Request, data: bytes | None) -> Outcome:
    """Run one entry through the app's routes and handlers, in this thread (so inside the transaction)."""
    headers = {name: request.headers[name] for name in _PASSED_ON if name in request.headers}
    headers.update(entry.headers, Accept="application/fhir+json")
    if data is not None:
        headers["Content-Type"] = "application/fhir+json"
    outer_id = g.get("request_id")
    with current_app.test_request_context(entry.path, method=entry.method, headers=headers, data=data, base_url=request.host_url,
                                          environ_overrides={BUNDLE_ENTRY: True}):
        if in_plain_api():  # asked of the decoded path routing would see: %76%31/… too
            refused = issue(Msg.BUNDLE_ENTRY_INVALID, f"Bundle.entry[{entry.index}]", index=entry.index, reason=PLAIN_API_REFUSED)
            return Outcome(refused.status, {}, operation_outcome([refused]))
        response = current_app.full_dispatch_request()
    g.request_id = outer_id
    raw = response.get_data()
    kept = {k: v for k, v in response.headers.items() if k in ("Location", "ETag", "Last-Modified")}
    return Outcome(response.status_code, kept, exact_json.loads(raw.decode()) if raw else None)


def _response_bundle(kind: str, outcomes: list[Outcome]) -> dict[str, t.Any]:
    return bundle(kind, [_entry(o) for o in outcomes])


def _entry(outcome: Outcome) -> dict[str, t.Any]:
    response: dict[str, t.Any] = {"status": outcome.status_line}
    if "Location" in outcome.headers:
        response["location"] = urlsplit(outcome.headers["Location"]).path.lstrip("/")
    if "ETag" in outcome.headers:
        response["etag"] = outcome.headers["ETag"]
    if outcome.body is not None and "Last-Modified" in outcome.headers:
        response["lastModified"] = (outcome.body.get("meta") or {}).get("lastUpdated", outcome.headers["Last-Modified"])
    is_outcome = outcome.body is not None and outcome.body.get("resourceType") == "OperationOutcome"
    if is_outcome:
        response["outcome"] = outcome.body
    entry: dict[str, t.Any] = {}
    if outcome.body is not None and not is_outcome:
        entry["resource"] = outcome.body
    entry["response"] = response
    return entry


def _transaction_failed(failed: _Failed) -> Response:
    entry, outcome = failed.request, failed.outcome
    first = issue(Msg.TRANSACTION_FAILED, f"Bundle.entry[{entry.index}]", index=entry.index, method=entry.method, url=entry.url,
                  status=outcome.status_line).to_fhir()
    issues = (outcome.body or {}).get("issue", []) if (outcome.body or {}).get("resourceType") == "OperationOutcome" else []
    return fhir_response({"resourceType": "OperationOutcome", "issue": [first, *issues]}, outcome.status)
