"""Bundles of search results, of versions and of batch answers (FHIR bundle.html, search.html#paging, http.html#history)."""

from __future__ import annotations

import datetime as dt
import typing as t
import uuid
from urllib.parse import urlencode

from flask import request

from ..instants import format_instant
from ..service.search import Query, page_token
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
    """``self``, and ``next``/``previous`` where there are more, each a complete query to follow: the
    parameters understood, at this request's path."""
    offset, count = query.offset, query.count

    def url(at: int) -> str:
        params = [*query.used, ("_count", str(count)), ("_offset", str(at))]
        return f"{base_url()}{request.path}?{urlencode(params)}"

    links = [{"relation": "self", "url": url(offset)}]
    if count and total is not None and offset + count < total:
        links.append({"relation": "next", "url": url(offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
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


def searchset(page: Page, included: list[dict[str, t.Any]], links: list[dict[str, str]]) -> dict[str, t.Any]:
    entries = [{"fullUrl": _full_url(r), "resource": r, "search": {"mode": "match"}} for r in page.resources]
    entries += [{"fullUrl": _full_url(r), "resource": r, "search": {"mode": "include"}} for r in included]
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
