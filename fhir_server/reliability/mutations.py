"""Hypothesis strategies for PractitionerRole bodies near valid ones: start from a valid create and
drop, add, duplicate or replace keys and items, with values of any JSON type, random strings and
numbers far past any range."""

from __future__ import annotations

import copy
import json
import typing as t

from hypothesis import strategies as st

_SCALARS = (st.none() | st.booleans() | st.text(max_size=40) | st.integers() | st.floats()
            | st.integers(min_value=-(10**400), max_value=10**400)
            | st.sampled_from(["", " ", "\t", "true", "5", "1e999", "Practitioner/", "PractitionerRole", "9999-99-99",
                               "2020-02-30", "\u0000", "𝄞", "$where", "a.b", "R00000000-0", "x" * 5000]))
JSON_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=12)


class Duplicated(dict[str, t.Any]):
    """An object written with one of its keys twice (``again``), as a client may send it."""

    def __init__(self, items: dict[str, t.Any], again: str) -> None:
        super().__init__(items)
        self.again = again


def encode(node: t.Any) -> bytes:
    return _text(node).encode("utf-8", "surrogatepass")


def _text(node: t.Any) -> str:
    if isinstance(node, dict):
        pairs = [*node.items(), *([(node.again, node[node.again])] if isinstance(node, Duplicated) and node.again in node else [])]
        return "{" + ", ".join(f"{json.dumps(k)}: {_text(v)}" for k, v in pairs) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_text(v) for v in node) + "]"
    return json.dumps(node)  # NaN and Infinity as JavaScript writes them, which JSON does not allow


def _containers(doc: t.Any, path: tuple[t.Any, ...] = ()) -> list[tuple[t.Any, ...]]:
    """The paths of every object and array in ``doc``, the root first."""
    found = [path]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        if isinstance(value, (dict, list)):
            found += _containers(value, (*path, key))
    return found


def _at(doc: t.Any, path: tuple[t.Any, ...]) -> t.Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, t.Any]) -> t.Any:
    """``valid`` after one to four mutations."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 19)) == 0:
            return draw(JSON_VALUES)  # now and then, no resource at all
        path = draw(st.sampled_from(_containers(doc)))
        node = _at(doc, path)
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = draw(st.sampled_from(["drop", "replace", "add", "duplicate"] if keys else ["add"]))
        if action == "add":
            if isinstance(node, dict):
                node[draw(st.text(max_size=12) | st.sampled_from(sorted(valid)))] = draw(JSON_VALUES)
            else:
                node.append(draw(JSON_VALUES | st.sampled_from(node or [None])))
            continue
        key = draw(st.sampled_from(keys))
        if action == "drop":
            del node[key]
        elif action == "replace":
            node[key] = draw(JSON_VALUES)
        elif isinstance(node, dict):
            duplicated = Duplicated(node, key)
            if path:
                _at(doc, path[:-1])[path[-1]] = duplicated
            else:
                doc = duplicated
        else:
            node.append(copy.deepcopy(node[key]))
    return doc
