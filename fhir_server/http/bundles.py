"""Bundles of search results, of versions and of batch answers (FHIR bundle.html, search.html#paging, http.html#history)."""

from __future__ import annotations

import datetime as dt
import typing as t
import uuid
from urllib.parse import urlencode

from flask import request

from ..instants import format_instant
from ..outcome import Issue, operation_outcome
from ..service.search import MAX_OFFSET, Query, page_token
from ..store.queries import Page
from .responses import base_url


def bundle(kind: str, entries: list[dict[str, t.Any]], total: int | None = None,
           links: list[dict[str, str]] | None = None) -> dict[str, t.Any]:
    """A Bundle; ``total`` and ``link`` belong to searchsets and histories."""
    out: dict[str, t.Any] = {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "meta": {"lastUpdated": format_instant(dt.datetime.now(dt.timezone.utc))},
        "type": kind,
    }
    if total is not None:
        out["total"] = total
    if links:
        out["link"] = links
    if entries:  # FHIR JSON has no empty arrays
        out["entry"] = entries
    return out


def _full_url(resource: dict[str, t.Any]) -> str:
    return f"{base_url()}/{resource['resourceType']}/{resource['id']}"


def paging_links(query: Query, total: int | None) -> list[dict[str, str]]:
    """``self``, ``first``, and ``next``/``previous`` where there are more, and ``last`` where the
    total is known and its page within reach of ``_offset``; each a complete query to follow: the
    parameters understood, at this request's path."""
    offset, count = query.offset, query.count

    def url(at: int) -> str:
        params = [*query.used, ("_count", str(count)), ("_offset", str(at))]
        return f"{base_url()}{request.path}?{urlencode(params)}"

    links = [{"relation": "self", "url": url(offset)}]
    if not count:  # _summary=count or _count=0: a total, no pages
        return links
    if total is not None and offset + count < total:
        links.append({"relation": "next", "url": url(offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    links.append({"relation": "first", "url": url(0)})
    last = (max(total, 1) - 1) // count * count if total is not None else None
    if last is not None and last <= MAX_OFFSET:
        links.append({"relation": "last", "url": url(last)})
    return links


def history_links(query: Query, page: Page) -> list[dict[str, str]]:
    """``self``, and ``next`` where there are more: history pages by key (``_page``), so there is no
    ``previous`` (FHIR makes it optional); a client goes back by starting again from the newest."""

    def url(after: tuple[t.Any, ...] | None) -> str:
        params = [*query.used, ("_count", str(query.count)), *([("_page", page_token(after))] if after else [])]
        return f"{base_url()}{request.path}?{urlencode(params)}"

    links = [{"relation": "self", "url": url(query.after)}]
    if page.after is not None:
        links.append({"relation": "next", "url": url(page.after)})
    return links


def searchset(page: Page, included: list[dict[str, t.Any]], links: list[dict[str, str]],
              warnings: list[Issue] | None = None) -> dict[str, t.Any]:
    """A searchset: the matches, what ``_include``/``_revinclude`` added, and an OperationOutcome
    saying what was ignored or cut (search.mode ``outcome``), if anything was."""
    entries = [{"fullUrl": _full_url(r), "resource": r, "search": {"mode": "match"}} for r in page.resources]
    entries += [{"fullUrl": _full_url(r), "resource": r, "search": {"mode": "include"}} for r in included]
    if warnings:
        said = uuid.uuid4()
        outcome = {"resourceType": "OperationOutcome", "id": said.hex, **operation_outcome(warnings)}
        entries.append({"fullUrl": f"urn:uuid:{said}", "resource": outcome,
                        "search": {"mode": "outcome"}})
    return bundle("searchset", entries, page.total, links)


def history(page: Page, links: list[dict[str, str]]) -> dict[str, t.Any]:
    def entry(resource: dict[str, t.Any]) -> dict[str, t.Any]:
        meta = resource["meta"]
        first = meta["versionId"] == "1"
        return {
            "fullUrl": _full_url(resource),
            "resource": resource,
            "request": {"method": "POST" if first else "PUT",
                        "url": resource["resourceType"] if first else f"{resource['resourceType']}/{resource['id']}"},
            "response": {"status": "201 Created" if first else "200 OK", "etag": f'W/"{meta["versionId"]}"',
                         "lastModified": meta["lastUpdated"]},
        }

    return bundle("history", [entry(r) for r in page.resources], page.total, links)
