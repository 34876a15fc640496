"""The server's version: the one in pyproject.toml, read from the installed package's metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("fhir-server")
except PackageNotFoundError:  # run from a checkout that was never installed (`make` installs it)
    VERSION = "0+unknown"
