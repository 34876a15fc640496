"""Documents built once per process and served as text: the CapabilityStatement (``/metadata``) and
the OpenAPI description (``/openapi.json``) depend only on the app (its routes, search table and
profiles, all fixed once it serves) and on the base URL, which may come from each request's Host.
So each is written once with a placeholder for the base URL, and each request gets that text with
its base URL put in: microseconds instead of milliseconds, and a Host header cannot make the server
build it again."""

from __future__ import annotations

import typing as t

from flask import current_app

# Written as JSON, this string ("\u0000base-url\u0000") cannot be part of any other value of the documents.
_BASE_URL = "\x00base-url\x00"


def document_text(key: t.Hashable, build: t.Callable[[str], t.Any], dumps: t.Callable[[t.Any], str], base_url: str) -> str:
    """``dumps(build(base_url))``, from the text kept under ``key`` (built on first use).

    ``dumps`` must write a string the same way wherever it stands (true of ``json.dumps`` with any
    indent): the base URL is put in as ``dumps(base_url)`` where ``dumps(placeholder)`` stands, quotes
    left out, so that a value that starts with the base URL (the token endpoint's) gets it too."""
    kept: dict[t.Hashable, str] = current_app.extensions.setdefault("documents", {})
    text = kept.get(key)
    if text is None:  # two threads may both build it on first use: the same text, kept once
        text = kept[key] = dumps(build(_BASE_URL))
    return text.replace(dumps(_BASE_URL)[1:-1], dumps(base_url)[1:-1])
