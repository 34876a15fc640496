"""Values put into requests and expectations: fresh identifiers and ``{{name}}`` placeholders.

A run replaces each *fresh literal* (e.g. the CPN ``99ZZZA`` the example files use) with a value no
earlier run has used, so that the examples create new records every time and a second run meets no
"duplicate". Placeholders stand for what only the server knows, such as the id it issued, and for
the run's own settings (:data:`BUILT_IN`).
"""

from __future__ import annotations

import re
import secrets
import typing as t

from .. import identifiers as ids

#: Placeholders every run provides.
BUILT_IN = ("access_token", "api_key", "base_url", "userid")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # the HPI alphabet: no I or O (SPEC.md §2.1)
_ALPHANUMERIC = "0123456789" + _LETTERS


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def _letters(n: int, alphabet: str = _LETTERS) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _checked(prefix: str) -> str:
    """An organisation (G) or facility (F) id with a valid mod-11 check character."""
    while True:
        stem = prefix + _letters(2, _ALPHANUMERIC) + _digits(3)
        check = ids.organisation_check_character(stem)
        if check:
            return f"{stem}-{check}"


#: Kinds of fresh value: a CPN is 2 digits and 4 letters, checked by format only (SPEC.md §2.4).
FRESH_KINDS: dict[str, t.Callable[[], str]] = {
    "cpn": lambda: _digits(2) + _letters(4),
    "hpi-organisation-id": lambda: _checked("G"),
    "hpi-facility-id": lambda: _checked("F"),
    "token": lambda: secrets.token_hex(8),
}


def fresh_values(fresh: t.Mapping[str, str]) -> dict[str, str]:
    """A new value for each fresh literal, different from every literal and from each other."""
    chosen: dict[str, str] = {}
    for literal, kind in fresh.items():
        value = FRESH_KINDS[kind]()
        while value in fresh or value in chosen.values():
            value = FRESH_KINDS[kind]()
        chosen[literal] = value
    return chosen


def placeholders(value: t.Any) -> set[str]:
    """The names of the ``{{name}}`` placeholders anywhere in ``value`` (strings, lists, dicts)."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


def substitute(value: t.Any, fresh: t.Mapping[str, str], saved: t.Mapping[str, str]) -> t.Any:
    """``value`` with fresh literals replaced, then placeholders filled; in nested lists and dicts too.

    :raises KeyError: naming a placeholder with no value.
    """
    if isinstance(value, str):
        for literal, new in fresh.items():
            value = value.replace(literal, new)
        return _PLACEHOLDER.sub(lambda m: saved[m.group(1)], value)
    if isinstance(value, dict):
        return {k: substitute(v, fresh, saved) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, fresh, saved) for v in value]
    return value
