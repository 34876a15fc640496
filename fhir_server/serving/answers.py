"""Answers the serving front gives itself, for requests it refuses before the app sees them: an
OperationOutcome, or the plain-JSON API's error envelope under ``/v1/``, as the app would answer."""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field

from .. import envelope
from ..outcome import Issue, operation_outcome
from ..service.plain_role import PATH_PREFIX

FHIR_JSON = "application/fhir+json; charset=utf-8"
PLAIN_JSON = "application/json; charset=utf-8"


@dataclass
class Answer:
    """A whole response: status, headers (without framing: the front adds Content-Length) and body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str = ""


def refusal(found: Issue, *, path: str | None, request_id: str, status: int | None = None) -> Answer:
    """The answer to a request refused by the front; ``path`` is None where no request line was read."""
    status = status or found.status
    if path is not None and path.startswith(PATH_PREFIX):
        body: dict[str, t.Any] = envelope.error_body([found], status, envelope.meta(request_id, status))
        content_type = PLAIN_JSON
    else:
        body, content_type = operation_outcome([found]), FHIR_JSON
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [("Content-Type", content_type), ("X-Request-Id", request_id), ("Connection", "close")]
    if status == 503:
        headers.append(("Retry-After", "1"))  # as the app's 503s
    return Answer(status, headers, text)
