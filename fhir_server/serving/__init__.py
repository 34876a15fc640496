"""Serving: gunicorn's worker class of our own, with a front that reads requests whole within
deadlines and size limits before the WSGI app sees them (:mod:`.front`)."""

from __future__ import annotations

from .worker import FrontWorker as FrontWorker

__all__ = ["FrontWorker"]
