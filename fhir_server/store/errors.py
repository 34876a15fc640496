"""Where pymongo's exceptions stop: a database that cannot answer, or whose answer was lost, becomes
:class:`StoreUnavailable` (503); a lost race on a unique index becomes :class:`IdentifierTaken`.

An error means "unavailable, outcome unknown" when the driver or the server says the operation may
be retried (network errors, before or after sending; not-primary and shutdown codes; the retryable
codes of the retryable-writes spec, mongos's HostUnreachable among them), when it ran out of time
(the request's deadline, ``MaxTimeMSExpired``, ``ExceededTimeLimit``, a full connection pool), and
when a write was applied but its write concern was not met (``writeConcernError``, ``wtimeout``).
Whether a write may have been applied is the caller's knowledge, not the error's: methods that write
say so with :func:`translate_write_errors`. Other pymongo errors are bugs of ours, and reach the 500
handler, which logs them.
"""

from __future__ import annotations

import functools
import typing as t

from pymongo.errors import (
    BulkWriteError,
    ClientBulkWriteException,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

from ..outcome import StoreUnavailable

P = t.ParamSpec("P")
R = t.TypeVar("R")

# The retryable-writes spec's codes (pymongo's helpers_shared._RETRYABLE_ERROR_CODES) and the time limits.
UNAVAILABLE_CODES = frozenset({
    6,  # HostUnreachable (mongos)
    7,  # HostNotFound
    50,  # MaxTimeMSExpired
    89,  # NetworkTimeout
    91,  # ShutdownInProgress
    134,  # ReadConcernMajorityNotAvailableYet
    189,  # PrimarySteppedDown
    262,  # ExceededTimeLimit
    9001,  # SocketException
    10058,  # LegacyNotPrimary
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})
_UNKNOWN_LABELS = ("RetryableWriteError", "TransientTransactionError", "UnknownTransactionCommitResult")


def is_unavailable(e: PyMongoError) -> bool:
    """Whether ``e`` means the database could not do it now (or did not say whether it did)."""
    if isinstance(e, (ConnectionFailure, ExecutionTimeout, WriteConcernError)) or e.timeout:
        return True
    if isinstance(e, BulkWriteError):
        return bool(e.details.get("writeConcernErrors"))
    if isinstance(e, ClientBulkWriteException):  # several collections in one command: its own error, or a write's
        return bool(e.write_concern_errors) or isinstance(e.error, PyMongoError) and is_unavailable(e.error)
    if isinstance(e, OperationFailure):
        return e.code in UNAVAILABLE_CODES or any(e.has_error_label(label) for label in _UNKNOWN_LABELS)
    return False


def unavailable(e: PyMongoError, wrote: bool) -> StoreUnavailable:
    """Our error for ``e``; ``wrote``: the operation was a write that may have been applied, unless the
    server said that none was (the ``NoWritesPerformed`` label)."""
    if isinstance(e, ClientBulkWriteException) and isinstance(e.error, PyMongoError):
        e = e.error  # the command's own error carries the labels
    return StoreUnavailable(may_be_applied=wrote and not e.has_error_label("NoWritesPerformed"))


def _translating(fn: t.Callable[P, R], wrote: bool) -> t.Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PyMongoError as e:
            if is_unavailable(e):
                raise unavailable(e, wrote) from e
            raise

    return wrapper


def translate_errors(fn: t.Callable[P, R]) -> t.Callable[P, R]:
    """For reads: an unavailable database is a plain 503 (nothing was changed)."""
    return _translating(fn, wrote=False)


def translate_write_errors(fn: t.Callable[P, R]) -> t.Callable[P, R]:
    """For writes: an unavailable database is a 503 that says the change may have been applied."""
    return _translating(fn, wrote=True)


class IdentifierTaken(Exception):
    """A record was not stored because another of its type already has one of its identifiers."""

    def __init__(self, identifier: str, key: str) -> None:
        super().__init__(f"{identifier} is used by {key}")
        self.identifier = identifier
        self.key = key
