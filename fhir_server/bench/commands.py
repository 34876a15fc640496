"""Database commands per request, counted: the server (and the baseline app) count every command
pymongo sends, by name, in the histogram ``fhir_server_db_command_duration_seconds`` at ``/metrics``;
the bench reads it before and after a scenario and divides the difference by the requests sent.

Connection handshakes and authentication (:data:`HANDSHAKES`) are the driver's, not a request's: a
new pooled connection sends them once. They are kept apart, so the figure per request is of the
commands the request itself asked for; the counts by name keep them, for whoever wants them.
"""

from __future__ import annotations

from collections import Counter

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

HISTOGRAM = "fhir_server_db_command_duration_seconds"
#: Sent by the driver when it opens or checks a connection, never on a request's behalf.
HANDSHAKES = frozenset({"hello", "isMaster", "ismaster", "saslStart", "saslContinue", "ping", "endSessions"})


def command_counts(exposition: str) -> Counter[str]:
    """The count of every command name in a ``/metrics`` text."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(exposition):
        if family.name == HISTOGRAM:
            for sample in family.samples:
                if sample.name == HISTOGRAM + "_count":
                    counts[sample.labels["command"]] += int(sample.value)
    return counts


async def scrape(session: aiohttp.ClientSession, base_url: str) -> Counter[str]:
    async with session.get(base_url + "/metrics") as response:
        if response.status != 200:
            raise RuntimeError(f"GET {base_url}/metrics: {response.status}")
        return command_counts(await response.text())


def per_request(before: Counter[str], after: Counter[str], requests: int) -> tuple[float, dict[str, float]]:
    """The commands per request other than :data:`HANDSHAKES`, and every command's per request by name."""
    sent = after - before  # Counter subtraction keeps the positive differences only
    n = requests or 1
    by_name = {name: round(count / n, 3) for name, count in sorted(sent.items())}
    return round(sum(c for name, c in sent.items() if name not in HANDSHAKES) / n, 3), by_name
