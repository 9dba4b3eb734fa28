"""Structured JSON logs for every service, one object per line, with the current request or batch.

``log_context`` carries what a log line is about (the API's request id, the indicator values a
consumer is applying); every record logged inside ``bind(...)`` carries those fields.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "bind",
    "configure_logging",
    "log_context",
]

log_context: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields to every log record emitted in this block (and in tasks it starts)."""
    token = log_context.set({**(log_context.get() or {}), **fields})
    try:
        yield
    finally:
        log_context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (log_context.get() or {}).items():
            setattr(record, key, value)
        return True


def configure_logging(level: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka reports every rebalance step at INFO; keep them but not the connection chatter.
    logging.getLogger("aiokafka.conn").setLevel(logging.WARNING)
