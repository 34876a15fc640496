"""HTTP calls that never hang and never raise: every call ends as an :class:`Answer` within its
timeout, a status or the kind of failure (connection error, timeout)."""

from __future__ import annotations

import json
import threading
import typing as t
from dataclasses import dataclass

import requests

from ..auth.assertion import Caller, TokenRefused
from ..version import VERSION

FHIR_JSON = "application/fhir+json"
USERID = "99ZZZS"
USER_AGENT = f"fhir-server-reliability/{VERSION}"
TIMEOUT = 10.0  # seconds: longer than any answer should take, DB_TIMEOUT_MS included


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all
    failure: str | None = None  # "connection" or "timeout" when status is None
    body: bytes = b""
    content_type: str = ""

    def json(self) -> t.Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def messages(self) -> list[str]:
        """The diagnostics of an OperationOutcome, the message of an error envelope."""
        doc = self.json()
        if not isinstance(doc, dict):
            return []
        if isinstance(doc.get("error"), dict):
            return [str(doc["error"].get("message"))]
        return [str(i.get("diagnostics")) for i in doc.get("issue", []) if isinstance(i, dict)]

    @property
    def is_5xx(self) -> bool:
        return self.status is not None and self.status >= 500

    def describe(self) -> str:
        return str(self.status) if self.status is not None else str(self.failure)


class Client:
    """Calls one server as ``caller``: FHIR calls with its access token, its key, ``userid`` and
    ``User-Agent`` (SPEC.md §6); plain-JSON calls with the key alone, as that API asks. Safe to share
    between threads."""

    def __init__(self, base_url: str, caller: Caller, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url
        self.caller = caller
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return t.cast(requests.Session, self._local.session)

    def send(self, method: str, path: str, body: bytes | None = None, *, plain: bool = False,
             headers: t.Mapping[str, str | None] | None = None) -> Answer:
        """A header given as None is not sent."""
        try:
            auth = {"x-api-key": self.caller.api_key} if plain else {**self.caller.headers(), "userid": USERID,
                                                                      "User-Agent": USER_AGENT}
            sent = {**auth, "Content-Type": "application/json" if plain else FHIR_JSON, **(headers or {})}
            # requests leaves out a header given as None, which its annotations do not allow
            r = self._session().request(method, self.base_url + path, data=body, headers=sent,  # type: ignore[arg-type]
                                        timeout=self.timeout)
        except requests.Timeout:
            return Answer(None, "timeout")
        except requests.ConnectionError:
            return Answer(None, "connection")
        except TokenRefused:  # a new token was due and the token endpoint gave none
            return Answer(None, "no token")
        return Answer(r.status_code, None, r.content, r.headers.get("Content-Type", ""))

    def create(self, role: dict[str, t.Any]) -> Answer:
        return self.send("POST", "/PractitionerRole", json.dumps(role).encode())

    def create_raw(self, body: bytes) -> Answer:
        return self.send("POST", "/PractitionerRole", body)

    def create_plain(self, fields: dict[str, t.Any]) -> Answer:
        return self.send("POST", "/v1/practitioner-roles", json.dumps(fields).encode(), plain=True)
