"""What every scenario is handed: the running processes, a client, new valid roles, the database."""

from __future__ import annotations

from dataclasses import dataclass

from .client import Client
from .payloads import Roles
from .processes import Lab
from .stored import Stored


@dataclass
class Harness:
    lab: Lab
    client: Client
    roles: Roles
    stored: Stored
