"""Conformance runs: the requests in ``examples/`` against any HPI-compatible server, each answer
compared with what ``examples/manifest.json`` expects (``examples/README.md``)."""

from .checks import Answer
from .local_server import LocalServer, ServerDidNotStart, throwaway_server
from .manifest import Expect, Manifest, ManifestError, Step, load_manifest
from .report import format_steps, format_table, summary
from .runner import Result, Send, Target, http_sender, run

__all__ = [
    "Answer",
    "Expect",
    "LocalServer",
    "Manifest",
    "ManifestError",
    "Result",
    "Send",
    "ServerDidNotStart",
    "Step",
    "Target",
    "format_steps",
    "format_table",
    "http_sender",
    "load_manifest",
    "run",
    "summary",
    "throwaway_server",
]
