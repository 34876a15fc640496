"""Turning a request body into JSON that is safe to store, before any FHIR rule is looked at."""

from __future__ import annotations

import json
import re
import sys
import typing as t

from ..outcome import Issue, Msg, issue

MAX_DEPTH = 32  # a PractitionerRole is at most ~6 deep; deeper input is an attack or a mistake
# A \uD800-\uDFFF escape: JSON allows one alone, but such a string is not text and cannot be stored.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


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
    surrogate escapes are errors."""
    try:
        text = body.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
        if _SURROGATE_ESCAPE.search(text):  # rare: only then is the whole document checked
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return doc, []
    except UnicodeEncodeError:
        return None, [issue(Msg.MALFORMED_JSON, detail="a \\u escape of an unpaired surrogate is not text")]
    except _Rejected as e:
        return None, [e.issue]
    except UnicodeDecodeError as e:
        return None, [issue(Msg.MALFORMED_JSON, detail=f"invalid UTF-8 at byte {e.start}")]
    except json.JSONDecodeError as e:
        return None, [issue(Msg.MALFORMED_JSON, detail=f"{e.msg} at line {e.lineno} column {e.colno}")]
    except ValueError:  # Python's cap on the digits of an integer (CVE-2020-10735), which JSON lacks
        return None, [issue(Msg.MALFORMED_JSON, detail=f"an integer has more than {sys.get_int_max_str_digits()} digits")]
    except RecursionError:
        return None, [issue(Msg.TOO_DEEP, limit=MAX_DEPTH)]


def check_keys(doc: t.Any, root: str) -> list[Issue]:
    """Property names MongoDB would read as operators or paths, and nesting past :data:`MAX_DEPTH`."""
    issues: list[Issue] = []

    def walk(node: t.Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            issues.append(issue(Msg.TOO_DEEP, path, limit=MAX_DEPTH))
            return
        if isinstance(node, dict):
            for key, value in node.items():
                if key.startswith("$") or "." in key or "\x00" in key:
                    issues.append(issue(Msg.UNSAFE_KEY, path, key=key))
                else:
                    walk(value, f"{path}.{key}", depth + 1)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]", depth + 1)

    walk(doc, root, 0)
    return issues
