"""Settings, read from the environment once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    #: MongoDB connection string; empty means "start the embedded database" (``fhir-server serve``).
    mongodb_uri: str = field(default_factory=lambda: os.environ.get("MONGODB_URI", ""))
    database: str = field(default_factory=lambda: os.environ.get("MONGODB_DATABASE", "fhir"))
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("DATA_DIR", PROJECT_DIR / "var")))
    profiles_dir: Path = field(default_factory=lambda: Path(os.environ.get("PROFILES_DIR", PROJECT_DIR / "profiles")))
    host: str = field(default_factory=lambda: os.environ.get("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("PORT", 8080))
    workers: int = field(default_factory=lambda: _env_int("WEB_CONCURRENCY", 2))
    #: Absolute base of Location headers; by default taken from the request's Host.
    base_url: str = field(default_factory=lambda: os.environ.get("BASE_URL", ""))
    max_body_bytes: int = field(default_factory=lambda: _env_int("MAX_BODY_BYTES", 1024 * 1024))
    #: Entries one batch or transaction Bundle may hold; more get 413.
    max_bundle_entries: int = field(default_factory=lambda: _env_int("MAX_BUNDLE_ENTRIES", 100))
    #: How long a worker trusts an API key it has checked (seconds); a revoked key dies within this.
    api_key_cache_seconds: int = field(default_factory=lambda: _env_int("API_KEY_CACHE_SECONDS", 10))
    #: Requests an API key may make, unless it has a limit of its own (``fhir-server api-key limit``):
    #: one or more ``N/second|minute|hour|day`` joined by ``;``. Counted in the database, so shared by
    #: every worker on every host.
    rate_limit: str = field(default_factory=lambda: os.environ.get("RATE_LIMIT", "500/hour"))
    #: How long a request waits for an unreachable database before answering 503 (milliseconds).
    db_timeout_ms: int = field(default_factory=lambda: _env_int("DB_TIMEOUT_MS", 2000))
    #: Longest a batch or transaction Bundle may run (seconds), below gunicorn's 30 s worker timeout:
    #: a batch answers the entries not run by then 503, a transaction is rolled back (503).
    request_deadline_seconds: float = field(default_factory=lambda: float(os.environ.get("REQUEST_DEADLINE_SECONDS", 20)))
    #: Largest answer of one batch or transaction Bundle (bytes of its entries' answers); past it, 413.
    max_response_bytes: int = field(default_factory=lambda: _env_int("MAX_RESPONSE_BYTES", 8 * 1024 * 1024))
