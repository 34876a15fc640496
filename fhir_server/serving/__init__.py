"""Serving: gunicorn's worker class of our own, with a front that reads requests whole within
deadlines and size limits before the WSGI app sees them (:mod:`.front`)."""

from __future__ import annotations

from .worker import FrontWorker as FrontWorker

__all__ = ["GUNICORN_CONFIG", "WORKER_CLASS", "FrontWorker"]

#: How gunicorn is told to run the server (and the bench's baseline app, on the same stack).
WORKER_CLASS = "fhir_server.serving.worker.FrontWorker"
GUNICORN_CONFIG = "python:fhir_server.serving.gunicorn_config"
