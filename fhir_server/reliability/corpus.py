"""Bad request bodies, each of which must be refused with a 4xx and store nothing: broken JSON,
bodies too deep, too big or not text, keys MongoDB would obey, and every value of a valid body
replaced, one at a time, by values of the wrong JSON types."""

from __future__ import annotations

import copy
import json
import typing as t
from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class BadInput:
    name: str
    body: bytes
    content_type: str | None = None  # None: the target's own JSON type


def _dump(doc: t.Any) -> bytes:
    return json.dumps(doc).encode()


def _with(valid: dict[str, t.Any], key: str, value: t.Any) -> dict[str, t.Any]:
    return {**valid, key: value}


def malformed(valid: dict[str, t.Any]) -> list[BadInput]:
    """Bodies that are not JSON, or not a JSON object, or not text."""
    text = _dump(valid)
    cases = [BadInput("empty body", b""), BadInput("only whitespace", b" \n\t ")]
    cases += [BadInput(f"truncated at {n}/8", text[: len(text) * n // 8]) for n in range(1, 8)]
    cases += [BadInput(f"malformed {raw[:24]!r}", raw) for raw in (
        b"{", b"}", b"{'a': 1}", b'{"a": 1,}', b'{"a" 1}', b"[1, 2", b"nul", text + b"x", text + text, b'{"a": "unterminated}',
        b'{"a": 01}', b'{"a": .5}', b'{"a": +1}', b'{"a": 0x10}', b'{"a": "\\x41"}', b'{"a": "\\u12"}')]
    cases += [BadInput(f"top-level {raw.decode()}", raw) for raw in (b"null", b"true", b"5", b'"text"', b"[]", b"[{}]", _dump([valid]))]
    cases += [BadInput(f"constant {c}", text[:-1] + f', "n": {c}}}'.encode()) for c in ("NaN", "Infinity", "-Infinity")]
    cases += [
        BadInput("number out of float range", text[:-1] + b', "n": 1e999}'),
        BadInput("integer of 5,000 digits", text[:-1] + b', "n": ' + b"9" * 5000 + b"}"),
        BadInput("duplicate key", text[:-1] + b', "resourceType": "PractitionerRole"}'),
        BadInput("UTF-8 byte order mark", b"\xef\xbb\xbf" + text),
        BadInput("UTF-16", json.dumps(valid).encode("utf-16")),
        BadInput("invalid UTF-8 byte", text.replace(b'"', b'"\xff', 1)),
        BadInput("invalid UTF-8 in a string", text[:-1] + b', "s": "a\xc3\x28b"}'),
        BadInput("overlong UTF-8", text[:-1] + b', "s": "\xc0\xaf"}'),
        BadInput("UTF-8 of a surrogate", text[:-1] + b', "s": "\xed\xa0\x80"}'),
        BadInput("unpaired high surrogate escape", text[:-1] + b', "s": "\\ud800"}'),
        BadInput("unpaired low surrogate escape", text[:-1] + b', "s": "\\udc00x"}'),
        BadInput("reversed surrogate pair", text[:-1] + b', "s": "\\udc00\\ud800"}'),
        BadInput("surrogate escape in a key", text[:-1] + b', "\\ud800": 1}'),
        BadInput("raw control character in a string", text[:-1] + b', "s": "a\x01b"}'),
        BadInput("raw NUL in a string", text[:-1] + b', "s": "a\x00b"}'),
        BadInput("NUL before the body", b"\x00" + text),
        BadInput("XML", b'<PractitionerRole xmlns="http://hl7.org/fhir"/>', "application/fhir+xml"),
        BadInput("JSON as text/plain", text, "text/plain"),
        BadInput("JSON as a form", text, "application/x-www-form-urlencoded"),
        BadInput("no content type", text, ""),
    ]
    return cases


def hostile(valid: dict[str, t.Any], with_text: t.Callable[[str], dict[str, t.Any]]) -> list[BadInput]:
    """Well-formed JSON built to hurt: depth, size, keys MongoDB reads as operators, control characters.
    ``with_text(s)`` is ``valid`` with ``s`` as the value of one of its free-text strings."""
    deep = 100_000
    nested: t.Any = "x"
    for _ in range(40):
        nested = {"a": [nested]}
    return [
        BadInput(f"{deep:,} nested arrays", b"[" * deep + b"]" * deep),
        BadInput(f"{deep:,} nested objects", b'{"a":' * deep + b"1" + b"}" * deep),
        BadInput("80 levels inside the body", _dump(_with(valid, "deep", nested))),
        BadInput("10 MB body", _dump(with_text("x" * (10 * MB)))),
        BadInput("1 MB string", _dump(with_text("x" * (MB - 1000)))),
        BadInput("array of 100,000 numbers", _dump(_with(valid, "extra", [1] * 100_000))),
        BadInput("100,000 empty objects", _dump(_with(valid, "extra", [{}] * 100_000))),
        BadInput("100,000 keys", _dump({**valid, **{f"k{i}": 1 for i in range(100_000)}})),
        BadInput("$-key at the top", _dump(_with(valid, "$where", "sleep(1000)"))),
        BadInput("$-key nested", _dump(_with(valid, "x", {"$gt": ""}))),
        BadInput("$set as a key", _dump({"$set": valid})),
        BadInput("dotted key", _dump(_with(valid, "a.b", 1))),
        BadInput("dotted key nested", _dump(_with(valid, "x", [{"a.b": 1}]))),
        BadInput("NUL in a key", _dump(_with(valid, "a\x00b", 1))),
        BadInput("NUL in a value", _dump(with_text("a\x00b"))),
        BadInput("control characters in a value", _dump(with_text("a\x1b[2J\x07\x08b"))),
        BadInput("only a NUL as a value", _dump(with_text("\x00"))),
        BadInput("empty key", _dump(_with(valid, "", 1))),
    ]


def _wrong_values(value: t.Any, nullable: bool) -> list[t.Any]:
    """Values of every JSON type but ``value``'s (a bool is not a number, nor a number a bool)."""
    samples: list[t.Any] = ["text", 7, 2.5, True, [], {}, [value], {"value": value}]
    if nullable:
        samples.append(None)
    if isinstance(value, (list, dict)) and value:
        samples.append(next(iter(value.values())) if isinstance(value, dict) else value[0])  # unwrapped
    kind = _json_type(value)
    return [s for s in samples if _json_type(s) != kind or (isinstance(s, list) and s == [value])]


def _json_type(value: t.Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _paths(doc: t.Any, path: tuple[t.Any, ...] = ()) -> t.Iterator[tuple[tuple[t.Any, ...], t.Any]]:
    if isinstance(doc, dict):
        items: t.Iterable[tuple[t.Any, t.Any]] = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return
    for key, value in items:
        yield (*path, key), value
        yield from _paths(value, (*path, key))


def _replaced(doc: t.Any, path: tuple[t.Any, ...], value: t.Any) -> t.Any:
    copied = copy.deepcopy(doc)
    node = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


def wrong_types(valid: dict[str, t.Any], *, nullable: t.Callable[[tuple[t.Any, ...]], bool] = lambda path: True,
                skip: t.Callable[[tuple[t.Any, ...]], bool] = lambda path: False) -> list[BadInput]:
    """``valid`` with each value, at every depth, replaced by each value of another JSON type.
    ``nullable(path)`` says whether null is wrong there (in the plain API, null means "not sent");
    ``skip(path)`` leaves out values the server ignores or replaces."""
    cases = []
    for path, value in _paths(valid):
        if skip(path):
            continue
        name = ".".join(map(str, path))
        for wrong in _wrong_values(value, nullable(path)):
            cases.append(BadInput(f"{name} = {json.dumps(wrong)[:30]}", _dump(_replaced(valid, path, wrong))))
    return cases
