"""``fhir-server bench`` (``make bench``): the server's throughput, latency, CPU and memory under load,
next to a bare Flask app on the same stack, measured in one run on this machine."""

from .load import Connection, Request, Tally, drive, open_session, percentile
from .report import Result, Target, check_targets, document, flat_targets, format_table, format_targets, write_json
from .run import Options, run

__all__ = [
    "Connection",
    "Options",
    "Request",
    "Result",
    "Tally",
    "Target",
    "check_targets",
    "document",
    "drive",
    "flat_targets",
    "format_table",
    "format_targets",
    "open_session",
    "percentile",
    "run",
    "write_json",
]
