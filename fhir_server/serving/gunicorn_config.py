"""gunicorn's settings that are code, for ``fhir-server serve`` (``-c python:fhir_server.serving.gunicorn_config``):
logging as every other process of the server logs (logs.py, gunicorn's access log off), and the
metrics of a worker that exited handed over to the others' sum (metrics.py)."""

from __future__ import annotations

import typing as t

from .. import logs, metrics
from ..config import Settings

_settings = Settings()
logconfig_dict = logs.dict_config(_settings.log_format, _settings.log_level)
accesslog = None  # it would log query strings; the request log (audit.py) has a line for each request


def child_exit(server: t.Any, worker: t.Any) -> None:
    metrics.mark_process_dead(worker.pid)
