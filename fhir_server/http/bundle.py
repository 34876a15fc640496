"""``POST /``: batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction).

Each entry runs through the server's own routes, as if sent alone with the outer request's headers,
so it meets exactly the rules, statuses and messages of that interaction. A batch answers every entry
with its own status. A transaction runs in one database transaction, in FHIR's order, with
``urn:uuid`` fullUrls and conditional references (``Practitioner?identifier=…``) resolved into
``Type/id``; the first entry that fails rolls everything back and its status and OperationOutcome
answer the whole request.

What one request may cost is bounded:

- Bundles do not nest: an entry whose URL routes to ``POST /`` itself, however it is spelt (``""``,
  ``?``, ``%2F``...), is refused (400) before it runs; the decision is the router's, not a string match.
- At most ``MAX_BUNDLE_ENTRIES`` entries (413), each a single interaction with its own limits (a
  search page has at most ``_count`` 50 records).
- The entries' answers together stay under ``MAX_RESPONSE_BYTES``: the entry that would pass it is
  answered 413 (a write that was done keeps its status, location and etag, without the resource) and
  later entries are not run (413); a transaction is rolled back (413).
- The whole request ends by ``REQUEST_DEADLINE_SECONDS``, below gunicorn's worker timeout: a batch
  answers the entries not yet run 503, a transaction is rolled back (503).
- The Bundle counts once against the caller's rate limit, as any request, and each entry that runs
  once more (the entries of a transaction run again at the database's request, not again). An entry
  answered 429 answers every later entry 429 too, without running or counting them; in a
  transaction it rolls everything back (429).
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from .. import exact_json
from ..outcome import FhirError, Issue, Msg, RequestRejected, StoreUnavailable, issue, operation_outcome
from ..service.bundle import Request, conditional_references, read_bundle, transaction_order, with_references
from ..validation.json_body import check_keys
from .bundles import bundle
from .envelope import in_plain_api
from .incoming import body, context
from .rate_limits import BUNDLE_LOOKUP
from .responses import fhir_response

bp = Blueprint("bundle", __name__)
# Distinct conditional references (``Practitioner?identifier=…``) of one entry: each is a search, run
# for the entry without a rate-limit count of its own, so their number is bounded here.
MAX_CONDITIONAL_REFERENCES = 10
# What an entry's request takes from the outer request.
_PASSED_ON = ("Authorization", "x-api-key", "userid", "User-Agent", "X-Correlation-Id", "Prefer")
_KEPT = ("Location", "ETag", "Last-Modified", "Retry-After")


@dataclass
class Outcome:
    status: int
    headers: dict[str, str]
    body: dict[str, t.Any] | None
    size: int = 0  # bytes of the body as the entry's route answered it

    @property
    def failed(self) -> bool:
        return self.status >= 400

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"


def _refused(found: Issue) -> Outcome:
    return Outcome(found.status, {}, operation_outcome([found]))


@dataclass
class _Budget:
    """What is left of the request's time and answer size."""

    seconds: float
    max_bytes: int
    ends: float = 0.0
    used: int = 0
    attempts: int = 0  # of a transaction: the database may ask for it to be run again

    def __post_init__(self) -> None:
        self.ends = time.monotonic() + self.seconds

    @property
    def remaining(self) -> float:
        return self.ends - time.monotonic()

    def takes(self, outcome: Outcome) -> bool:
        """Count the outcome's size; False if it does not fit any more."""
        self.used += outcome.size
        return self.used <= self.max_bytes


class _Failed(Exception):
    def __init__(self, request: Request, outcome: Outcome) -> None:
        self.request, self.outcome = request, outcome


@bp.post("/")
def batch_or_transaction() -> Response:
    settings = current_app.extensions["settings"]
    budget = _Budget(settings.request_deadline_seconds, settings.max_response_bytes)
    kind, entries = read_bundle(body(), settings.max_bundle_entries)
    if kind == "batch":
        return fhir_response(_response_bundle("batch-response", _run_batch(entries, budget)))
    invalid = [e for e in entries if isinstance(e, Issue)]
    if invalid:
        return fhir_response(operation_outcome(invalid), 400)
    requests = t.cast(list[Request], entries)
    try:
        outcomes = context().store.in_transaction(lambda: _run_transaction(requests, budget), max(budget.remaining, 0.001))
    except _Failed as failed:
        return _transaction_failed(failed)
    return fhir_response(_response_bundle("transaction-response", [outcomes[r.index] for r in requests]))


def _run_batch(entries: list[Request | Issue], budget: _Budget) -> list[Outcome]:
    outcomes: list[Outcome] = []
    stop: Msg | Outcome | None = None  # how the entries after a stop are answered, without running them
    for index, entry in enumerate(entries):
        if stop is None and budget.remaining <= 0:
            stop = Msg.BUNDLE_DEADLINE
        if stop is not None:
            outcomes.append(stop if isinstance(stop, Outcome) else _not_run(stop, index, budget))
            continue
        # Each entry waits for the database at most as long as a request alone, within the Bundle's deadline.
        outcome = _run_alone(entry, min(budget.remaining, current_app.extensions["settings"].db_timeout_ms / 1000))
        if not budget.takes(outcome):
            done = isinstance(entry, Request) and entry.method != "GET" and not outcome.failed
            # A change that was made is still reported, without its resource.
            outcome = Outcome(outcome.status, outcome.headers, None) if done else _not_run(Msg.RESPONSE_TOO_LARGE, index, budget)
            stop = Msg.RESPONSE_TOO_LARGE
        elif outcome.status == 429:  # every later entry would be refused too
            stop = outcome
        outcomes.append(outcome)
    return outcomes


def _not_run(reason: Msg, index: int, budget: _Budget) -> Outcome:
    return _refused(issue(reason, f"Bundle.entry[{index}]", index=index, seconds=round(budget.seconds), limit=budget.max_bytes))


def _run_alone(entry: Request | Issue, seconds: float) -> Outcome:
    if isinstance(entry, Issue):
        return _refused(entry)
    try:
        with context().store.within(seconds):
            resolved, problem = _resolve_conditions(entry)
            if problem is not None:
                return problem
            return _dispatch(entry, with_references(entry.resource, resolved) if entry.resource is not None else None)
    except FhirError as e:
        return Outcome(e.status, {"Retry-After": "1"} if isinstance(e, StoreUnavailable) else {}, operation_outcome(e.issues))
    except Exception:  # one entry's failure is its own; the others stand
        current_app.logger.exception("batch entry %d failed", entry.index)
        return _refused(issue(Msg.INTERNAL))


def _run_transaction(requests: list[Request], budget: _Budget) -> dict[int, Outcome]:
    """One attempt at the whole transaction; run again from the start if the database asks for it
    (its entries count against the rate limit on the first attempt only)."""
    outcomes: dict[int, Outcome] = {}
    created: dict[str, str] = {}  # fullUrl → Type/id
    budget.used = 0
    budget.attempts += 1
    counted = budget.attempts == 1
    for entry in transaction_order(requests):
        if budget.remaining <= 0:
            raise TimeoutError()  # the transaction is rolled back and answered 503
        resolved, problem = _resolve_conditions(entry)
        if problem is not None:
            raise _Failed(entry, problem)
        data = with_references(entry.resource, {**created, **resolved}) if entry.resource is not None else None
        outcome = _dispatch(entry, data, counted)
        if outcome.failed:
            raise _Failed(entry, outcome)
        if not budget.takes(outcome):
            raise RequestRejected(issue(Msg.TRANSACTION_TOO_LARGE, "Bundle.entry", limit=budget.max_bytes))
        if entry.full_url and outcome.body and "id" in outcome.body and entry.method == "POST":
            created[entry.full_url] = f"{outcome.body['resourceType']}/{outcome.body['id']}"
        outcomes[entry.index] = outcome
    return outcomes


def _resolve_conditions(entry: Request) -> tuple[dict[str, str], Outcome | None]:
    """Each conditional reference of the entry's resource, searched for: it must match exactly one record.
    A resource past the size limits is not searched for: its route refuses it as it comes."""
    references = conditional_references(entry.resource)
    if not references or check_keys(entry.resource, str((entry.resource or {}).get("resourceType")), context().limits):
        return {}, None
    if len(references) > MAX_CONDITIONAL_REFERENCES:
        return {}, _refused(issue(Msg.BUNDLE_TOO_MANY_CONDITIONS, f"Bundle.entry[{entry.index}].resource", index=entry.index,
                                  limit=MAX_CONDITIONAL_REFERENCES))
    resolved = {}
    for reference in references:
        found = _dispatch(Request(entry.index, "GET", reference, None, None), None, counted=False)
        matches = [e["resource"] for e in (found.body or {}).get("entry", []) if e.get("search", {}).get("mode") == "match"]
        if found.failed:
            return {}, found
        if found.body is None or found.body.get("total") != 1 or len(matches) != 1:
            return {}, _refused(issue(Msg.REFERENCE_UNRESOLVED, f"Bundle.entry[{entry.index}].resource", reference=reference,
                                      count=(found.body or {}).get("total", 0)))
        resolved[reference] = f"{matches[0]['resourceType']}/{matches[0]['id']}"
    return resolved, None


def _dispatch(entry: Request, data: bytes | None, counted: bool = True) -> Outcome:
    """Run one entry through the app's routes and handlers, in this thread (so inside the transaction).
    It counts against the caller's rate limit as a request of its own unless ``counted`` is False: a
    lookup made for an entry (a conditional reference), which is part of that entry, or an entry of a
    transaction run again."""
    headers = {name: request.headers[name] for name in _PASSED_ON if name in request.headers}
    headers.update(entry.headers, Accept="application/fhir+json")
    if data is not None:
        headers["Content-Type"] = "application/fhir+json"
    outer_id = g.get("request_id")
    with current_app.test_request_context(entry.path, method=entry.method, headers=headers, data=data, base_url=request.host_url,
                                          environ_overrides={BUNDLE_LOOKUP: not counted}):
        if _routes_to_bundle():
            return _refused(issue(Msg.BUNDLE_NESTED, f"Bundle.entry[{entry.index}]", index=entry.index, url=entry.url))
        if in_plain_api():  # asked of the decoded path routing would see: %76%31/… too
            return _refused(issue(Msg.BUNDLE_ENTRY_PLAIN_API, f"Bundle.entry[{entry.index}]", index=entry.index))
        response = current_app.full_dispatch_request()
    g.request_id = outer_id
    raw = response.get_data()
    kept = {k: v for k, v in response.headers.items() if k in _KEPT}
    return Outcome(response.status_code, kept, exact_json.loads(raw.decode()) if raw else None, len(raw))


def _routes_to_bundle() -> bool:
    """Whether this request, as the router sees it (decoded, redirects followed), is ``POST /``."""
    adapter = current_app.create_url_adapter(request)
    if adapter is None:
        return False
    path = request.path
    for _ in range(5):
        try:
            endpoint, _ = adapter.match(path, request.method)
        except RequestRedirect as redirect:
            path = urlsplit(redirect.new_url).path
            continue
        except HTTPException:
            return False
        return bool(endpoint == "bundle.batch_or_transaction")
    return True  # redirected round and round: not run either


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
    headers = {"Retry-After": outcome.headers["Retry-After"]} if "Retry-After" in outcome.headers else {}
    first = issue(Msg.TRANSACTION_FAILED, f"Bundle.entry[{entry.index}]", index=entry.index, method=entry.method, url=entry.url,
                  status=outcome.status_line).to_fhir()
    issues = (outcome.body or {}).get("issue", []) if (outcome.body or {}).get("resourceType") == "OperationOutcome" else []
    return fhir_response({"resourceType": "OperationOutcome", "issue": [first, *issues]}, outcome.status, headers)
