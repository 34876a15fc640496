"""Settings, read from the environment once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .auth.scopes import HPI_SCOPE_PREFIX
from .validation.json_body import Limits

PROJECT_DIR = Path(__file__).resolve().parent.parent
#: When the server started, set by ``fhir-server serve`` for all its workers: the date of the
#: CapabilityStatement, so that every worker serves the same one. Without it, each worker's own start.
STARTED_ENV = "FHIR_SERVER_STARTED"
ENVIRONMENTS = ("development", "production")


class SettingError(ValueError):
    """A setting holds a value the server cannot run with; the message names it and what it may be."""


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    #: MongoDB connection string; empty means "start the embedded database" (``fhir-server serve``).
    mongodb_uri: str = field(default_factory=lambda: os.environ.get("MONGODB_URI", ""))
    #: ``development`` or ``production`` (see :attr:`production`); empty: production if MONGODB_URI is
    #: set, else development.
    environment: str = field(default_factory=lambda: os.environ.get("FHIR_SERVER_ENV", ""))
    database: str = field(default_factory=lambda: os.environ.get("MONGODB_DATABASE", "fhir"))
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("DATA_DIR", PROJECT_DIR / "var")))
    profiles_dir: Path = field(default_factory=lambda: Path(os.environ.get("PROFILES_DIR", PROJECT_DIR / "profiles")))
    host: str = field(default_factory=lambda: os.environ.get("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("PORT", 8080))
    workers: int = field(default_factory=lambda: _env_int("WEB_CONCURRENCY", 2))
    #: Absolute base of every URL the server writes (Location, links, fullUrl, the CapabilityStatement,
    #: discovery); by default the request's scheme and host, which must then be allowed (http/hosts.py).
    base_url: str = field(default_factory=lambda: os.environ.get("BASE_URL", ""))
    #: ``host[:port]`` names clients reach the server by, comma-separated (no port: any port); a request
    #: for another host gets 400. Unset: any host if BASE_URL is set, else the development default,
    #: ``localhost``, ``127.0.0.1``, ``[::1]`` and HOST, on any port. Set it or BASE_URL in production.
    allowed_hosts: tuple[str, ...] = field(default_factory=lambda: _env_list("ALLOWED_HOSTS"))
    #: IP addresses or networks (CIDR) of the proxies whose X-Forwarded-For, -Proto, -Host and -Port
    #: are believed, comma-separated; from anyone else those headers are dropped. None by default.
    trusted_proxies: tuple[str, ...] = field(default_factory=lambda: _env_list("TRUSTED_PROXIES"))
    #: How many trusted proxies in a row add to X-Forwarded-* (Werkzeug's ProxyFix counts).
    trusted_proxy_hops: int = field(default_factory=lambda: _env_int("TRUSTED_PROXY_HOPS", 1))
    max_body_bytes: int = field(default_factory=lambda: _env_int("MAX_BODY_BYTES", 1024 * 1024))
    #: Entries one batch or transaction Bundle may hold; more get 413.
    max_bundle_entries: int = field(default_factory=lambda: _env_int("MAX_BUNDLE_ENTRIES", 100))
    #: Items any one JSON array of a FHIR resource may hold (telecom, identifier, extension …); more get 400.
    max_array_items: int = field(default_factory=lambda: _env_int("MAX_ARRAY_ITEMS", 100))
    #: Characters any one string of a FHIR resource may hold (but Narrative div and Attachment data); more get 400.
    max_string_length: int = field(default_factory=lambda: _env_int("MAX_STRING_LENGTH", 10_000))
    #: How long a worker trusts an API key and its client as it found them (seconds): a revoked key or
    #: client, or a client's changed scopes, take effect within this.
    api_key_cache_seconds: int = field(default_factory=lambda: _env_int("API_KEY_CACHE_SECONDS", 10))
    #: Requests an API key may make, unless it has a limit of its own (``fhir-server api-key limit``):
    #: one or more ``N/second|minute|hour|day`` joined by ``;``. Counted in the database, so shared by
    #: every worker on every host.
    rate_limit: str = field(default_factory=lambda: os.environ.get("RATE_LIMIT", "500/hour"))
    #: How long one request may wait for the database in all (milliseconds); past it, 503 with Retry-After.
    #: A reservation's lease is half of what is left of it (see service.practitioner_role).
    db_timeout_ms: int = field(default_factory=lambda: _env_int("DB_TIMEOUT_MS", 2000))
    #: How long a client may take to send a request line and its headers (seconds), counted from the
    #: moment the server waits for it (a new connection, or the end of the previous answer on a kept-alive
    #: one). Past it: 408 if part of it came, else the idle connection is closed without an answer.
    header_timeout_seconds: float = field(default_factory=lambda: float(os.environ.get("HEADER_TIMEOUT_SECONDS", 10)))
    #: How long a client may take to send a whole body after its headers (seconds); past it 408 and the
    #: connection closes. 30 s carries MAX_BODY_BYTES (1 MiB) at 35 KB/s or faster. Writing the answer
    #: to a client that does not read it has the same bound.
    body_timeout_seconds: float = field(default_factory=lambda: float(os.environ.get("BODY_TIMEOUT_SECONDS", 30)))
    #: Bytes of request bodies one worker process may hold in memory at once, across all its
    #: connections: a body is counted from its headers (its whole Content-Length) or as it arrives
    #: (chunked) until its answer is sent. One that does not fit is answered 503 with Retry-After and its
    #: connection closed, so memory stays bounded by this rather than by connections × MAX_BODY_BYTES.
    #: Keep it at least MAX_BODY_BYTES, or no body of the largest size is ever taken.
    body_buffer_bytes: int = field(default_factory=lambda: _env_int("BODY_BUFFER_BYTES", 64 * 1024 * 1024))
    #: Threads per worker process that run requests in the app once they have been read whole; a request
    #: that needs no database (/metadata, /openapi.json) runs on two threads of its own instead.
    app_threads: int = field(default_factory=lambda: _env_int("APP_THREADS", 8))
    #: Longest a batch or transaction Bundle may run (seconds), below gunicorn's 30 s worker timeout:
    #: a batch answers the entries not run by then 503, a transaction is rolled back (503).
    request_deadline_seconds: float = field(default_factory=lambda: float(os.environ.get("REQUEST_DEADLINE_SECONDS", 20)))
    #: Largest answer of one batch or transaction Bundle (bytes of its entries' answers); past it, 413.
    max_response_bytes: int = field(default_factory=lambda: _env_int("MAX_RESPONSE_BYTES", 8 * 1024 * 1024))
    #: How long a stopping server (SIGTERM, SIGINT, SIGHUP) lets requests in hand finish (seconds): it
    #: stops accepting at once, then closes what is still running after this (gunicorn's graceful timeout).
    shutdown_grace_seconds: int = field(default_factory=lambda: _env_int("SHUTDOWN_GRACE_SECONDS", 10))

    #: Origins whose browser pages may call the server (CORS), comma-separated (``https://app.example.org``);
    #: ``*`` for any. None by default: browsers keep other origins' pages out.
    cors_origins: tuple[str, ...] = field(default_factory=lambda: tuple(
        o.strip().rstrip("/") for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()))
    #: Smallest answer body sent gzip-compressed to a client that accepts gzip (bytes); smaller ones are
    #: sent as they are, as compressing them saves too little to pay for itself.
    gzip_min_bytes: int = field(default_factory=lambda: _env_int("GZIP_MIN_BYTES", 1024))

    #: Lifetime of an access token from the token endpoint (seconds).
    token_seconds: int = field(default_factory=lambda: _env_int("TOKEN_SECONDS", 300))
    #: ``iss`` and ``aud`` of the access tokens: another server with the same value still cannot make
    #: tokens this one accepts (its signing keys are its own), but a distinct value says so plainly.
    token_issuer: str = field(default_factory=lambda: os.environ.get("TOKEN_ISSUER", "fhir-server"))
    #: What comes before a scope's short name (``PractitionerRole.r``) in tokens; the HPI's by default.
    scope_prefix: str = field(default_factory=lambda: os.environ.get("SCOPE_PREFIX", HPI_SCOPE_PREFIX))

    #: How long the migration lock is held without renewal (seconds): a ``migrate`` killed mid-way
    #: blocks the next one at most this long.
    migration_lease_seconds: float = field(default_factory=lambda: float(os.environ.get("MIGRATION_LEASE_SECONDS", "30")))

    #: Who may read ``/metrics``: ``public`` (anyone), ``token`` (``Authorization: Bearer`` METRICS_TOKEN;
    #: 401 otherwise, and always while METRICS_TOKEN is empty) or ``off`` (404). Empty: see :attr:`metrics`.
    metrics_access: str = field(default_factory=lambda: os.environ.get("METRICS", ""))
    #: The static secret a scraper sends for ``METRICS=token``.
    metrics_token: str = field(default_factory=lambda: os.environ.get("METRICS_TOKEN", ""), repr=False)
    #: ``json`` (one JSON object a line) or ``text``; see fhir_server/logs.py.
    log_format: str = field(default_factory=lambda: os.environ.get("LOG_FORMAT", "json"))
    #: The least level logged: DEBUG, INFO, WARNING, ERROR.
    log_level: str = field(default_factory=lambda: os.environ.get("LOG_LEVEL", "INFO"))

    def __post_init__(self) -> None:
        if self.environment not in ("", *ENVIRONMENTS):
            raise SettingError(f"FHIR_SERVER_ENV must be development or production, not {self.environment!r}")

    @property
    def production(self) -> bool:
        """Production loads no example data, registers no development client, prints no credential,
        and serves only a database already migrated to this release's schema (``fhir-server migrate``)."""
        return self.environment == "production" or (not self.environment and bool(self.mongodb_uri))

    @property
    def metrics(self) -> str:
        """Who may read ``/metrics``: METRICS, else public in development and token in production
        (counts by route and client activity are not for everyone who can reach the API)."""
        return self.metrics_access or ("token" if self.production else "public")

    @property
    def environment_name(self) -> str:
        return "production" if self.production else "development"

    @property
    def limits(self) -> Limits:
        return Limits(self.max_array_items, self.max_string_length)
