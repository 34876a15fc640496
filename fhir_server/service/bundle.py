"""Reading a batch or transaction Bundle (https://hl7.org/fhir/R4/http.html#transaction): its entries
as requests, the order a transaction runs them in, and the rewriting of references between entries.

Pure: the HTTP layer runs each request through the server's own routes.
"""

from __future__ import annotations

import posixpath
import typing as t
from dataclasses import dataclass, field

from .. import exact_json
from ..outcome import Issue, Msg, RequestRejected, issue
from .practitioner_role import parse

METHODS = ("GET", "POST", "PUT", "DELETE")
# FHIR's processing order for a transaction: deletes, creates, updates, then reads.
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}
_HEADERS = {"ifMatch": "If-Match", "ifNoneMatch": "If-None-Match", "ifNoneExist": "If-None-Exist",
            "ifModifiedSince": "If-Modified-Since"}


@dataclass
class Request:
    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, t.Any] | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The URL from the server's base, its dot segments resolved as a client resolves them
        (RFC 3986 §5.2.4: ``./`` is the base itself); where it routes is for the router to say."""
        url = self.url.lstrip("/")
        cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
        return (posixpath.normpath("/" + url[:cut]) if url[:cut] else "/") + url[cut:]


def read_bundle(body: bytes, max_entries: int) -> tuple[str, list[Request | Issue]]:
    """The Bundle's type and each entry as a Request, or as the Issue that makes it unusable.

    :raises RequestRejected: the body is not a batch or transaction Bundle (400), or too big (413).
    """
    doc = parse(body)
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle" or doc.get("type") not in ("batch", "transaction"):
        raise RequestRejected(issue(Msg.BUNDLE_TYPE, "Bundle.type"))
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise RequestRejected(issue(Msg.BUNDLE_ENTRY_INVALID, "Bundle.entry", index="*", reason="entry must be an array"))
    if len(entries) > max_entries:
        raise RequestRejected(issue(Msg.BUNDLE_TOO_LARGE, "Bundle.entry", count=len(entries), limit=max_entries))
    return doc["type"], [_read_entry(i, e) for i, e in enumerate(entries)]


def _read_entry(index: int, entry: t.Any) -> Request | Issue:
    def invalid(reason: str) -> Issue:
        return issue(Msg.BUNDLE_ENTRY_INVALID, f"Bundle.entry[{index}]", index=index, reason=reason)

    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or request.get("method") not in METHODS or not isinstance(request.get("url"), str):
        return invalid(f"request.method must be one of {', '.join(METHODS)}, with a request.url")
    url = request["url"]
    # Absolute is a scheme before the path; a query may well hold a URL (identifier=https://…|value).
    if "://" in url.partition("?")[0].partition("#")[0] or url.startswith("$") or any(ord(c) < 32 or c.isspace() for c in url):
        return invalid("request.url must be relative to the server's base, e.g. PractitionerRole or Practitioner/91ZABY")
    resource = entry.get("resource")
    if request["method"] in ("POST", "PUT") and not isinstance(resource, dict):
        return invalid(f"a {request['method']} needs a resource")
    full_url = entry.get("fullUrl")
    headers = {header: str(request[key]) for key, header in _HEADERS.items() if key in request}
    return Request(index, request["method"], url, full_url if isinstance(full_url, str) else None,
                   resource if request["method"] in ("POST", "PUT") else None, headers)


def transaction_order(requests: list[Request]) -> list[Request]:
    """FHIR's order, and within creates, an entry after the creates whose ``urn:uuid`` it refers to."""
    ordered = sorted(requests, key=lambda r: _ORDER[r.method])
    creates = [r for r in ordered if r.method == "POST"]
    defined = {r.full_url: r.index for r in creates if r.full_url and r.full_url.startswith("urn:")}
    # Each resource is walked once: walked per round, a chain of 100 creates holding 1 MB of
    # references cost seconds before the first statement ran.
    needs = {r.index: {defined[u] for u in _urns(r.resource) if u in defined} - {r.index} for r in creates}
    placed: list[Request] = []
    done: set[int] = set()
    pending = list(creates)
    while pending:
        ready = [r for r in pending if needs[r.index] <= done]
        ready = ready or pending[:1]  # a cycle: leave it to the references check to report
        placed += ready
        done.update(r.index for r in ready)
        pending = [r for r in pending if r.index not in done]
    return [r for r in ordered if r.method == "DELETE"] + placed + [r for r in ordered if r.method not in ("DELETE", "POST")]


def _urns(node: t.Any) -> t.Iterator[str]:
    for ref in _references(node):
        if ref["reference"].startswith("urn:"):
            yield ref["reference"]


def _references(node: t.Any) -> t.Iterator[dict[str, t.Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def conditional_references(resource: dict[str, t.Any] | None) -> list[str]:
    """References of the form ``Type?search`` (http.html#trules), to be resolved to one record each."""
    return sorted({r["reference"] for r in _references(resource) if "?" in r["reference"] and "/" not in r["reference"].split("?")[0]})


def with_references(resource: dict[str, t.Any] | None, resolved: t.Mapping[str, str]) -> bytes:
    """The resource as a request body, its references to other entries or conditions replaced by ``Type/id``."""
    text = exact_json.dumps(resource)
    if not resolved:
        return text.encode()
    copy = exact_json.loads(text)
    for ref in _references(copy):
        ref["reference"] = resolved.get(ref["reference"], ref["reference"])
    return exact_json.dumps(copy).encode()
