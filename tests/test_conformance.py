"""The examples in ``examples/`` against the session server: they all pass, also when run again on the
same server, and a wrong expectation is reported as a failure by the runner and the CLI."""

from __future__ import annotations

import json
import re
import shutil
import string
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhir_server.auth.assertion import Caller, ClientCredentials, new_client_key
from fhir_server.cli import main
from fhir_server.conformance import Result, Target, format_table, load_manifest, run
from fhir_server.outcome import Msg

from .support import ROOT, Server, start_server

EXAMPLES = ROOT / "examples"


def run_examples(server: Server, examples: Path = EXAMPLES) -> list[Result]:
    return run(load_manifest(examples), Target(server.base_url, Caller.of_client(server.base_url, server.credentials), "99ZZZS"))


def conformance_cli(server: Server, examples: Path = EXAMPLES, *auth: str) -> t.Any:
    """The CLI against ``server``, by default with the client credentials `serve` wrote."""
    auth = auth or ("--client-file", str(server.data_dir / "dev-client.json"))
    return CliRunner().invoke(main, ["conformance", "--base-url", server.base_url, *auth, "--examples", str(examples)])


def table_line(output: str, step: str) -> str:
    return next(line for line in output.splitlines() if re.match(rf"\d+\s+{re.escape(step)}\s", line))


def broken_copy(tmp_path: Path, step: str, **expect: t.Any) -> Path:
    """The examples with one step's expectations changed."""
    examples = tmp_path / "examples"
    shutil.copytree(EXAMPLES, examples)
    manifest = json.loads((examples / "manifest.json").read_text())
    next(s for s in manifest["steps"] if s["name"] == step)["expect"].update(expect)
    (examples / "manifest.json").write_text(json.dumps(manifest))
    return examples


def test_a_run_against_a_development_server_spends_the_development_keys_own_limit(tmp_path: Path) -> None:
    # RATE_LIMIT far below what one run sends: only a limit of the key's own lets the run through.
    server = start_server(tmp_path / "data", RATE_LIMIT="10/hour")
    try:
        outcome = conformance_cli(server)
        assert outcome.exit_code == 0, outcome.output
    finally:
        assert server.stop() == 0


def test_the_examples_pass_and_pass_again_on_the_same_server(server):
    results = run_examples(server)
    assert [r.step.name for r in results if not r.passed] == [], format_table(results)
    assert len(results) == len(load_manifest(EXAMPLES).steps)

    again = conformance_cli(server)  # the same examples again, through the CLI: no "duplicate", no "in use"
    assert again.exit_code == 0, again.output
    assert "FAIL" not in again.output
    assert again.output.rstrip().endswith(f"{len(results)} steps: all passed")
    assert "PASS" in table_line(again.output, "error-duplicate") and "422" in table_line(again.output, "error-duplicate")


def test_a_wrong_status_fails_that_step_and_the_steps_needing_its_values(server, tmp_path):
    examples = broken_copy(tmp_path, "create-ig-example", status=200)
    results = {r.step.name: r for r in run_examples(server, examples)}

    broken = results["create-ig-example"]
    assert not broken.passed and broken.status == 201
    assert broken.differences == ("status 201, expected 200",)
    # The role was created, but a failed step saves nothing: the updates of that role cannot run.
    needing = results["update-telecom-and-messaging-address"]
    assert not needing.passed and needing.status is None
    assert needing.differences == ("needs {{ig_role}}, which step create-ig-example did not save (it failed)",
                                   "needs {{ig_v1}}, which step create-ig-example did not save (it failed)")
    assert results["create-minimal"].passed and results["search-by-practitioner"].passed


def test_a_wrong_message_gives_a_failure_in_the_table_and_a_non_zero_exit(server, tmp_path):
    examples = broken_copy(tmp_path, "error-practitioner-missing", messages=["hpi-person-id is missing"])
    outcome = conformance_cli(server, examples)

    assert outcome.exit_code == 1
    line = table_line(outcome.output, "error-practitioner-missing")
    assert re.search(r"POST /PractitionerRole\s+422\s+422\s+FAIL\s+missing message 'hpi-person-id is missing'", line)
    assert "PASS" in table_line(outcome.output, "error-practitioner-unknown")
    total = len(load_manifest(EXAMPLES).steps)
    assert outcome.output.rstrip().endswith(f"{total} steps: {total - 1} passed, 1 failed")


def test_a_given_token_and_key_are_sent_with_every_step(server):
    outcome = conformance_cli(server, EXAMPLES, "--token", server.token(), "--api-key", server.api_key)
    assert outcome.exit_code == 0, outcome.output
    assert "PASS" in table_line(outcome.output, "error-missing-token")


def test_a_key_the_server_does_not_know_fails_the_steps_needing_one(server):
    outcome = conformance_cli(server, EXAMPLES, "--token", server.token(), "--api-key", "not-a-key-of-this-server")
    assert outcome.exit_code == 1
    assert re.search(r"POST /Practitioner\s+201\s+403\s+FAIL", table_line(outcome.output, "practitioner-create"))
    assert "PASS" in table_line(outcome.output, "metadata") and "PASS" in table_line(outcome.output, "smart-configuration")


def test_a_token_about_to_expire_is_replaced_between_steps(server):
    asked = []

    def fetch() -> dict[str, t.Any]:
        asked.append(1)
        return {"access_token": server.token(), "expires_in": 0}  # past the margin at once: asked again every step

    results = run(load_manifest(EXAMPLES), Target(server.base_url, Caller(server.api_key, fetch), "99ZZZS"))
    assert [r.step.name for r in results if not r.passed] == [], format_table(results)
    assert len(asked) == len(results)


def test_without_credentials_the_cli_says_where_they_come_from(tmp_path):
    outcome = CliRunner().invoke(main, ["conformance", "--base-url", "http://127.0.0.1:9", "--client-file", str(tmp_path / "none.json")])
    assert outcome.exit_code == 2
    assert "make run" in outcome.output and "--token with --api-key" in outcome.output
    alone = CliRunner().invoke(main, ["conformance", "--base-url", "http://127.0.0.1:9", "--api-key", "k"])
    assert alone.exit_code == 2 and "--token and --api-key go together" in alone.output


def test_a_server_that_does_not_answer_fails_every_step():
    results = run(load_manifest(EXAMPLES), Target("http://127.0.0.1:9", Caller.fixed("no-key", "no-token"), "99ZZZS"))
    assert not any(r.passed for r in results)
    assert results[0].differences[0].startswith("no answer: ConnectionError")


def test_with_no_token_to_be_had_the_steps_needing_one_fail_saying_so():
    credentials = ClientCredentials("no-client", "no-key", new_client_key())
    results = run(load_manifest(EXAMPLES), Target("http://127.0.0.1:9", Caller.of_client("http://127.0.0.1:9", credentials), "99ZZZS"))
    assert results[0].differences[0].startswith("no answer: ConnectionError")  # /metadata needs none
    needing = next(r for r in results if r.step.name == "practitioner-create")
    assert needing.status is None and needing.differences[0].startswith("no access token: ConnectionError")


# --- the examples themselves, without a server --------------------------------------------------------

def _catalogue_pattern(text: str) -> re.Pattern[str]:
    """A catalogue message with each ``{placeholder}`` standing for any text."""
    pieces = [re.escape(literal) + ("(.+)" if name is not None else "") for literal, name, _, _ in string.Formatter().parse(text)]
    return re.compile("".join(pieces), re.DOTALL)


def test_every_expected_message_is_a_catalogue_message():
    # Entries that are nothing but a placeholder ("{what}", "{reason}") would match any text.
    patterns = [_catalogue_pattern(m.value.text) for m in Msg if not re.fullmatch(r"\{\w+\}", m.value.text)]
    messages = {m for step in load_manifest(EXAMPLES).steps for m in step.expect.messages}
    informational = {"Created"}  # what the create view puts in OPERATION_OK's "{what}"
    assert [m for m in sorted(messages - informational) if not any(p.fullmatch(m) for p in patterns)] == []


# The HPI's own error cases (SPEC.md §3, §6): each must have an example.
HPI_ERRORS = [
    Msg.PRACTITIONER_REQUIRED, Msg.PRACTITIONER_INVALID, Msg.ORGANIZATION_OR_FACILITY_REQUIRED, Msg.ROLE_CODE_REQUIRED,
    Msg.DUPLICATE, Msg.STATUS_REASON_REQUIRED, Msg.PERIOD_END_REQUIRED, Msg.PERIOD_FORMAT, Msg.PERIOD_ORDER,
    Msg.CONTACT_DUPLICATE, Msg.PHONE_FORMAT, Msg.EMAIL_FORMAT, Msg.CONTACT_PERIOD_FORMAT, Msg.CONTACT_PERIOD_ORDER,
    Msg.NOT_UPDATABLE, Msg.ROLE_IDENTIFIER_REQUIRED, Msg.VERSION_CONFLICT, Msg.NOT_FOUND, Msg.SEARCH_PRACTITIONER_REQUIRED,
    Msg.FORBIDDEN, Msg.MISSING_USERID, Msg.UNAUTHORIZED, Msg.USER_AGENT_MISSING,
]


@pytest.mark.parametrize("msg", HPI_ERRORS, ids=lambda m: m.name)
def test_every_hpi_error_case_has_an_example(msg):
    steps = load_manifest(EXAMPLES).steps
    pattern = _catalogue_pattern(msg.value.text)
    assert [s.name for s in steps if any(pattern.fullmatch(m) for m in s.expect.messages) and msg.value.status in s.expect.status]


def test_every_example_file_is_a_step_body():
    manifest = load_manifest(EXAMPLES)
    used = {step.body_file for step in manifest.steps if step.body_file}
    files = {p for p in EXAMPLES.rglob("*.json") if p.name != "manifest.json"}
    assert files - used == set()


@pytest.mark.parametrize("change, problem", [
    ({"expect": {"status": 201, "mesages": []}}, "unknown key 'mesages'"),
    ({"body": "create/no-such-file.json"}, "body file create/no-such-file.json not found"),
    ({"path": "/PractitionerRole/{{later_role}}"}, "{{later_role}} is neither built in"),
])
def test_a_manifest_that_cannot_run_is_refused_before_sending_anything(tmp_path, change, problem):
    examples = tmp_path / "examples"
    shutil.copytree(EXAMPLES, examples)
    manifest = json.loads((examples / "manifest.json").read_text())
    manifest["steps"][1].update(change)
    (examples / "manifest.json").write_text(json.dumps(manifest))

    outcome = CliRunner().invoke(main, ["conformance", "--base-url", "http://127.0.0.1:9", "--token", "t", "--api-key", "k",
                                        "--examples", str(examples)])
    assert outcome.exit_code == 1
    assert problem in outcome.output
