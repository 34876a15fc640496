"""Turning a request body into JSON that is safe to store, before any FHIR rule is looked at."""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass

from .. import exact_json
from ..outcome import Issue, Msg, issue

MAX_DEPTH = 32  # a PractitionerRole is at most ~6 deep; deeper input is an attack or a mistake
# Strings that only the body size bounds: Narrative xhtml and Attachment base64Binary (a photo).
_UNCAPPED_STRINGS = {"div", "data"}

# A \uD800-\uDFFF escape: JSON allows one alone, but such a string is not text and cannot be stored.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class Limits:
    """Sizes this server takes in one resource, whatever a profile allows (settings MAX_ARRAY_ITEMS and
    MAX_STRING_LENGTH). Every element of these resources that may repeat has at most ``max_array_items``
    items (the profiles bound some further, with 422), so no array grows with what a client sends; every
    string has at most ``max_string_length`` characters but ``div`` and ``data`` (FHIR R4 allows 1 MB).
    """

    #: Items of any one JSON array of a resource (``telecom``, ``identifier``, ``extension``, ``given`` …).
    max_array_items: int = 100
    #: Characters of any one string (a name, a reference, a telecom value, a description).
    max_string_length: int = 10_000


class _Rejected(Exception):
    def __init__(self, found: Issue) -> None:
        self.issue = found


def _no_duplicate_keys(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _Rejected(issue(Msg.MALFORMED_JSON, detail=f"duplicate property {dup!r}"))
    return obj


def _no_constant(name: str) -> t.NoReturn:
    raise _Rejected(issue(Msg.MALFORMED_JSON, detail=f"{name} is not a JSON value"))


def parse_json(body: bytes) -> tuple[t.Any, list[Issue]]:
    """Parse ``body`` as UTF-8 JSON. Duplicate keys, NaN/Infinity, invalid UTF-8 and unpaired
    surrogate escapes are errors. Numbers are read as :mod:`fhir_server.exact_json` says: decimals
    exactly, and those it cannot keep as :class:`~fhir_server.exact_json.Unkept`, which
    :func:`check_keys` reports."""
    try:
        text = body.decode("utf-8")
        doc = exact_json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
        if _SURROGATE_ESCAPE.search(text):  # rare: only then is the whole document checked
            exact_json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return doc, []
    except UnicodeEncodeError:
        return None, [issue(Msg.MALFORMED_JSON, detail="a \\u escape of an unpaired surrogate is not text")]
    except _Rejected as e:
        return None, [e.issue]
    except UnicodeDecodeError as e:
        return None, [issue(Msg.MALFORMED_JSON, detail=f"invalid UTF-8 at byte {e.start}")]
    except json.JSONDecodeError as e:
        return None, [issue(Msg.MALFORMED_JSON, detail=f"{e.msg} at line {e.lineno} column {e.colno}")]
    except RecursionError:
        return None, [issue(Msg.TOO_DEEP, limit=MAX_DEPTH)]


def check_keys(doc: t.Any, root: str, limits: Limits = Limits()) -> list[Issue]:
    """Property names MongoDB would read as operators or paths, nesting past :data:`MAX_DEPTH`,
    arrays and strings past ``limits``, and numbers that would not be kept exactly as written."""
    issues: list[Issue] = []

    def walk(node: t.Any, path: str, depth: int, key: str = "") -> None:
        if depth > MAX_DEPTH:
            issues.append(issue(Msg.TOO_DEEP, path, limit=MAX_DEPTH))
            return
        if isinstance(node, dict):
            for name, value in node.items():
                if name.startswith("$") or "." in name or "\x00" in name:
                    issues.append(issue(Msg.UNSAFE_KEY, path, key=name))
                else:
                    walk(value, f"{path}.{name}", depth + 1, name)
        elif isinstance(node, list):
            if len(node) > limits.max_array_items:  # its items are not looked at: one issue, not thousands
                issues.append(issue(Msg.TOO_MANY_ITEMS, path, element=path, count=len(node), limit=limits.max_array_items))
                return
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]", depth + 1, key)
        elif isinstance(node, str):
            if len(node) > limits.max_string_length and key not in _UNCAPPED_STRINGS:
                issues.append(issue(Msg.STRING_TOO_LONG, path, element=path, length=len(node), limit=limits.max_string_length))
        elif isinstance(node, exact_json.Unkept):
            issues.append(issue(node.msg, path, number=node.shown, spelling=node.spelling))

    walk(doc, root, 0)
    return issues
