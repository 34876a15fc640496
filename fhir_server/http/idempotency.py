"""The ``Idempotency-Key`` header on creates (draft-ietf-httpapi-idempotency-key-header): a client that
did not get an answer, or got one saying the outcome is unknown (503), sends the same request with
the same key, and gets the first request's answer instead of a second record.

Keys are scoped per API key and kept for 24 hours (:mod:`..store.idempotency`). A replay of a key
whose request was answered gets that answer again (status, body, and the headers that name the
record); with a different request (method, path, conditions or body) it is refused with 422; while the
first request is still running, 409. After a 503 the replay waits out the first request's deadline
(when nothing it sent can still be applied), then looks for the role the first request tagged with
the key: found, it is answered 200; not found, the create runs again. A key costs two round trips
(claim and record), and none when absent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import time
import typing as t

from flask import current_app, g, make_response, request
from flask.typing import ResponseReturnValue

from .. import exact_json
from ..outcome import FhirError, Msg, RequestRejected, StoreUnavailable, issue
from ..store.deadline import current_deadline, seconds_left
from ..store.idempotency import Recorded
from .incoming import context

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
_KEPT_HEADERS = ("Location", "ETag", "Last-Modified", "Content-Location", "Content-Type")
_SCOPE = "fhir_server.idempotency_scope"  # set in the WSGI environ: (scope, taken over from an earlier attempt)

View = t.Callable[..., ResponseReturnValue]


def request_tag() -> tuple[str | None, bool]:
    """The current request's key scope (to tag what it stores), and whether an earlier attempt with
    the key may have stored it already (then the service looks for it first)."""
    return t.cast(tuple[str | None, bool], request.environ.get(_SCOPE, (None, False)))


def replayable(view: View) -> View:
    @functools.wraps(view)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> ResponseReturnValue:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 0 < len(key) <= MAX_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
            raise RequestRejected(issue(Msg.IDEMPOTENCY_KEY_INVALID, max=MAX_LENGTH))
        store = context().store
        scope = f"{g.api_key.key_id}|{key}"
        taken_over = _claim(scope, _fingerprint())
        if isinstance(taken_over, dict):
            return _replay(taken_over)
        request.environ[_SCOPE] = (scope, taken_over)
        applied_perhaps = False
        try:
            response = make_response(view(*args, **kwargs))
        except FhirError as e:
            applied_perhaps = isinstance(e, StoreUnavailable) and e.may_be_applied
            response = make_response(current_app.handle_user_exception(e))
        for _ in range(2):  # unrecorded after two tries, the claim runs out with its lease
            with contextlib.suppress(StoreUnavailable):
                if response.status_code >= 500:
                    # Surely not applied (a plain 503): a replay may run at once. Perhaps, or a 500 that
                    # cannot say: it waits out this deadline and looks for the role. Never replayed.
                    surely_not = response.status_code == 503 and not applied_perhaps
                    store.idempotency.mark_unknown(scope, dt.datetime.now(dt.timezone.utc) if surely_not else None)
                else:
                    store.idempotency.finish(scope, {
                        "status": response.status_code, "body": response.get_data(),
                        "headers": {h: response.headers[h] for h in _KEPT_HEADERS if h in response.headers}})
                break
        return response

    return wrapper


def _fingerprint() -> str:
    """What makes two requests the same one: method, path and query, the condition, and the body as
    JSON (the same document sent again with other white space or key order is the same request)."""
    parts = [request.method, request.full_path, request.headers.get("If-None-Exist", "")]
    digest = hashlib.sha256("\n".join(parts).encode())
    body = request.get_data(cache=True)  # cached: the view reads it again
    try:
        body = exact_json.dumps(exact_json.loads(body.decode()), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:  # not JSON (UnicodeDecodeError too): the view refuses it; the bytes will do here
        pass
    digest.update(body)
    return digest.hexdigest()


def _claim(scope: str, fingerprint: str) -> bool | dict[str, t.Any]:
    """Claim the key for this request: False if new, True if taken over from an attempt that ended
    without an answer; or the recorded answer to replay."""
    store = context().store
    timeout = store.timeout_seconds
    while True:
        now = dt.datetime.now(dt.timezone.utc)
        until = current_deadline(timeout)
        try:
            seen: Recorded | None = store.idempotency.begin(scope, fingerprint, until, now)
        except StoreUnavailable:
            with contextlib.suppress(StoreUnavailable):
                store.idempotency.withdraw(scope, until)
            raise StoreUnavailable() from None  # nothing of the request has been done
        if seen is None:
            return False
        if seen.fingerprint != fingerprint:
            raise RequestRejected(issue(Msg.IDEMPOTENCY_KEY_REUSED))
        if seen.state == "done" and seen.answer is not None:
            return seen.answer
        wait = (seen.until - now).total_seconds()
        if wait > 0:
            # Running: its answer is to come. Unknown: what it sent may still be applied until then.
            if seen.state == "running" or wait > seconds_left(timeout) - 0.1:
                raise RequestRejected(issue(Msg.IDEMPOTENCY_IN_PROGRESS))
            time.sleep(wait)
        if store.idempotency.take_over(scope, seen, current_deadline(timeout)):
            return True


def _replay(answer: dict[str, t.Any]) -> ResponseReturnValue:
    return current_app.response_class(answer["body"], answer["status"], answer["headers"])
