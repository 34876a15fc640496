"""The application factory."""

from __future__ import annotations

import datetime as dt
import os

from flask import Flask

from . import http
from .auth import Tokens
from .config import STARTED_ENV, Settings
from .definitions import load_definitions
from .http.auth import CallerCache
from .service import Context
from .store import Store, with_deadline
from .validation import compile_base


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app. Reads the profiles folder now, so a broken one stops start-up; opens no
    database connection until the first request (safe to call before gunicorn forks)."""
    settings = settings or Settings()
    if not settings.mongodb_uri:
        raise RuntimeError("MONGODB_URI is not set; start the server with `fhir-server serve` (make run)")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    store = Store(settings.mongodb_uri, settings.database, settings.db_timeout_ms, sweep=True)
    app.extensions.update(
        settings=settings,
        context=Context(store, load_definitions(settings.profiles_dir), limits=settings.limits),
        callers=CallerCache(store, settings.api_key_cache_seconds),
        tokens=Tokens(store.clients, issuer=settings.token_issuer, lifetime=settings.token_seconds,
                      scope_prefix=settings.scope_prefix),
        started=os.environ.get(STARTED_ENV) or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    compile_base()  # R4's base rules, compiled once (before gunicorn forks) rather than at the first request
    http.register(app)
    # One deadline for the whole request, rate-limit count included: past it, 503 with Retry-After.
    # Flask's documented way to wrap its WSGI app, which its annotations (a method) do not allow.
    app.wsgi_app = with_deadline(app.wsgi_app, settings.db_timeout_ms / 1000,  # type: ignore[method-assign,assignment]
                                 settings.request_deadline_seconds)
    return app
