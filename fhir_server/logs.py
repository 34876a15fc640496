"""How every process of the server logs: one setup for ``serve``, its gunicorn workers and the CLI.

Everything goes to stderr through the root logger, in one of two formats (``LOG_FORMAT``):

``json`` (the default)
    one JSON object a line: ``time`` (UTC, milliseconds), ``level``, ``logger``, ``message``, the
    record's structured ``fields`` (the request log's, see audit.py), else the ``request_id`` of the
    request being handled (:data:`REQUEST_ID`) if any, and, for an error, ``error``: its stack
    trace, which is never sent in an answer.
``text``
    ``time level logger message key=value ...`` for a person at a terminal.

``LOG_LEVEL`` (default INFO) is the root's level. gunicorn's own messages (``gunicorn.error``) go
the same way (its ``logconfig_dict``, serving/gunicorn_config.py); its access log is off, as it
would write query strings and the request log says more.

Formatting is the standard library's (``json.dumps`` of a dict): a line is a flat object, which
needs no more than that.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import logging.config
import typing as t

__all__ = ["FORMATS", "JsonFormatter", "TextFormatter", "configure", "dict_config"]

FORMATS = ("json", "text")
#: The attribute of a log record holding its structured fields: ``log.info("request", extra={FIELDS: {...}})``.
FIELDS = "fields"

#: The request a thread is handling (set and cleared by the app's hooks, http/__init__.py), so that
#: what is logged meanwhile (an error's stack trace) can be found from the X-Request-Id answered.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_configured = False


def _time(record: logging.LogRecord) -> str:
    when = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, t.Any]:
    found = getattr(record, FIELDS, None)
    if isinstance(found, dict):
        return found
    request_id = REQUEST_ID.get()
    return {"request_id": request_id} if request_id else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, t.Any] = {"time": _time(record), "level": record.levelname, "logger": record.name,
                                  "message": record.getMessage(), **_fields(record)}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=True, separators=(",", ":"), default=str)


def _shown(value: t.Any) -> str:
    """A field's value as one word: quoted and escaped as JSON if it is empty or holds a space, ``=``, a
    quote, a backslash or anything unprintable, so that no value (a path a client chose, decoded) can
    end the line or pose as another field."""
    text = str(value)
    if text and text.isprintable() and not any(c.isspace() or c in '="\\' for c in text):
        return text
    return json.dumps(text, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_shown(v)}" for k, v in _fields(record).items() if v is not None)
        text = f"{_time(record)} {record.levelname} {record.name} {record.getMessage()}" + (f" {fields}" if fields else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def dict_config(log_format: str, level: str) -> dict[str, t.Any]:
    """The ``logging.config.dictConfig`` of a process: gunicorn's ``logconfig_dict`` too."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,  # the app's loggers exist before gunicorn configures logging
        "formatters": {"server": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "server", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            # Off: it would log query strings; the request log (audit.py) has each request's line.
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def configure(log_format: str, level: str) -> None:
    """Set up this process's logging, once (later calls keep the first setup)."""
    global _configured
    if _configured:
        return
    logging.config.dictConfig(dict_config(log_format, level))
    _configured = True
