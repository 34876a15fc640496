"""Running the steps of a manifest, in order, against a server.

Each step's request is built from the manifest (fresh literals replaced, placeholders filled), sent,
and its answer compared with the step's expectations. A failed step does not stop the run; what it
would have saved stays unsaved, and a later step that needs it fails saying so.
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

import requests
from urllib3.util import SKIP_HEADER

from ..auth.assertion import Caller, TokenRefused
from .checks import Answer, compare, saved_value
from .manifest import Manifest, Step
from .values import fresh_values, placeholders, substitute

TIMEOUT_SECONDS = 30

#: How a request reaches the server: method, absolute URL, headers (None: not sent, not even a
#: default such as requests' User-Agent), body → the answer. Raises ``requests.RequestException``
#: when there is none.
Send = t.Callable[[str, str, dict[str, str | None], bytes | None], Answer]


@dataclass(frozen=True)
class Target:
    """The server to run against and the credentials to send (SPEC.md §6): the caller's API key and
    access token (``{{api_key}}``, ``{{access_token}}``; a token about to expire is replaced between
    steps) and ``userid``."""

    base_url: str
    caller: Caller
    userid: str


@dataclass(frozen=True)
class Result:
    """One step's outcome. ``path`` is what was requested (relative to the base URL where it was);
    ``status`` is None if no request was made or none answered."""

    step: Step
    path: str
    status: int | None
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.differences


def http_sender(session: requests.Session | None = None) -> Send:
    session = session or requests.Session()

    def send(method: str, url: str, headers: dict[str, str | None], body: bytes | None) -> Answer:
        # requests leaves out a header given as None (which its annotations do not allow); urllib3
        # would still add its own User-Agent unless told to skip it.
        sent = {name: SKIP_HEADER if value is None and name.lower() == "user-agent" else value for name, value in headers.items()}
        response = session.request(method, url, headers=sent, data=body,  # type: ignore[arg-type]
                                   timeout=TIMEOUT_SECONDS, allow_redirects=False)
        return Answer(response.status_code, response.headers, response.text)

    return send


def run(manifest: Manifest, target: Target, send: Send | None = None) -> list[Result]:
    """Run every step of ``manifest`` against ``target``, with new fresh values, and return the results."""
    send = send or http_sender()
    base_url = target.base_url.rstrip("/")
    fresh = fresh_values(manifest.fresh)
    saved = {"base_url": base_url, "api_key": target.caller.api_key, "userid": target.userid}
    saved_by = manifest.saved_by()
    results = []
    for step in manifest.steps:
        try:
            saved["access_token"] = target.caller.token()  # a new one if the last is about to expire
        except (requests.RequestException, TokenRefused) as e:
            saved.pop("access_token", None)
            if "access_token" in _missing_values(step, manifest.headers, saved):
                results.append(Result(step, step.path, None, (f"no access token: {e.__class__.__name__}: {e}",)))
                continue
        missing = _missing_values(step, manifest.headers, saved)
        if missing:
            reasons = tuple(f"needs {{{{{name}}}}}, which step {saved_by[name]} did not save (it failed)" for name in missing)
            results.append(Result(step, step.path, None, reasons))
        else:
            results.append(_run_step(step, manifest.headers, base_url, fresh, saved, send))
    return results


def _missing_values(step: Step, default_headers: dict[str, str], saved: dict[str, str]) -> list[str]:
    """The placeholders of a step with no value yet: an earlier step failed to save them. (Loading the
    manifest has checked that some earlier step saves each.)"""
    request = [step.path, {**default_headers, **step.headers}, step.body_text()]
    expectations = [step.expect.messages, step.expect.headers, step.expect.body]
    return sorted((placeholders(request) | (placeholders(expectations) - set(step.save))) - saved.keys())


def _run_step(step: Step, default_headers: dict[str, str], base_url: str, fresh: dict[str, str],
              saved: dict[str, str], send: Send) -> Result:
    """Send one step's request and compare the answer; on success, keep the values it saves."""
    headers = {**default_headers, **step.headers}
    body_text = step.body_text()
    path = substitute(step.path, fresh, saved)
    url = path if path.startswith(("http://", "https://")) else base_url + path
    sent_headers = {name: None if value is None else substitute(value, fresh, saved) for name, value in headers.items()}
    body = substitute(body_text, fresh, saved).encode("utf-8") if body_text is not None else None
    shown = path.removeprefix(base_url) or "/"
    try:
        answer = send(step.method, url, sent_headers, body)
    except requests.RequestException as e:
        return Result(step, shown, None, (f"no answer: {e.__class__.__name__}: {e}",))
    values = {name: saved_value(source, answer) for name, source in step.save.items()}
    problems = [f"cannot save {name}: {step.save[name]} is absent" for name, value in values.items() if value is None]
    # The expectations may use the values this step saves; one it could not save stays "{{name}}".
    known = {**saved, **{name: value or f"{{{{{name}}}}}" for name, value in values.items()}}
    expect = dataclasses.replace(
        step.expect,
        messages=tuple(substitute(list(step.expect.messages), fresh, known)),
        headers=substitute(step.expect.headers, fresh, known),
        body=substitute(step.expect.body, fresh, known),
    )
    differences = compare(expect, answer) + problems
    if not differences:
        saved.update(t.cast(dict[str, str], values))
    return Result(step, shown, answer.status, tuple(differences))

