"""Structured logs: one JSON object per line when ``log.format`` is ``json``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

__all__ = ["JsonFormatter", "logging_config"]


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` (+ ``exc`` when there is one).

    >>> record = logging.LogRecord("insiderwatch", logging.INFO, "f", 1, "ready on %s", ("p0",), None)
    >>> sorted(orjson.loads(JsonFormatter().format(record)))
    ['level', 'logger', 'message', 'time']
    """

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def logging_config(log_format: str, level: str) -> dict | None:
    """A ``logging.config.dictConfig`` for Faust, or ``None`` for its default text logs."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "level": level.upper(),
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
