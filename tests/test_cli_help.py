"""The command line reads well: every command and group answers --help with a one-sentence summary,
lists its subcommands by whole summaries, and fits an 80-column terminal; --version is the package's."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from fhir_server.cli import main

from .support import ROOT

WIDTH = 80


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in sorted(group.commands.items()):
        found += _commands(command, (*path, name)) if isinstance(command, click.Group) else [(*path, name)]
    return found


@pytest.mark.parametrize("path", _commands(main), ids=lambda path: " ".join(path) or "fhir-server")
def test_every_command_answers_help_readably(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="fhir-server", terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Usage: {' '.join(['fhir-server', *path])} ")
    summary = lines[2].strip()  # the usage line, a blank line, then the first line of the help
    assert summary[:1].isupper() and summary.endswith("."), summary
    assert lines[3] == "", "the summary is one line, and a paragraph of its own"
    assert [line for line in lines if len(line) > WIDTH] == []
    listed = lines[lines.index("Commands:") + 1:] if "Commands:" in lines else []
    assert [line for line in listed if line.endswith("...")] == [], "every subcommand's summary is shown whole"


def test_version_is_the_installed_packages() -> None:
    version = importlib.metadata.version("fhir-server")
    shown = subprocess.run([sys.executable, "-m", "fhir_server", "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (shown.returncode, shown.stdout) == (0, f"fhir-server, version {version}\n")
