"""Where pymongo's exceptions stop: a database that cannot be reached becomes :class:`StoreUnavailable`."""

from __future__ import annotations

import functools
import typing as t

from pymongo.errors import ConnectionFailure

from ..outcome import StoreUnavailable

P = t.ParamSpec("P")
R = t.TypeVar("R")


def translate_errors(fn: t.Callable[P, R]) -> t.Callable[P, R]:
    """Turn connection failures and time-outs (all :class:`ConnectionFailure`) into a 503.

    Other pymongo errors are bugs of ours, and reach the 500 handler, which logs them.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConnectionFailure as e:
            raise StoreUnavailable() from e

    return wrapper


class IdentifierTaken(Exception):
    """A record was not stored because another of its type already has one of its identifiers."""

    def __init__(self, identifier: str, key: str) -> None:
        super().__init__(f"{identifier} is used by {key}")
        self.identifier = identifier
        self.key = key
