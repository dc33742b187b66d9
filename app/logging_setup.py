"""Logging: plain text for people or one JSON object per line for log collectors
(``AUXSEL_LOG_FORMAT=json``). Job work carries ``job_id`` and ``worker_id`` on every
line: the worker sets them in context variables (``log_context``) and a filter copies
them onto each record, whichever logger wrote it."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("auxsel_job_id", default=None)
WORKER_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "auxsel_worker_id", default=None
)
CONTEXT_FIELDS = ("job_id", "worker_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"


@contextmanager
def log_context(*, job_id: str | None = None, worker_id: str | None = None) -> Iterator[None]:
    """Tag every log line written in this context (thread or task) with these ids."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    if job_id is not None:
        tokens.append((JOB_ID, JOB_ID.set(job_id)))
    if worker_id is not None:
        tokens.append((WORKER_ID, WORKER_ID.set(worker_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the context's job_id and worker_id onto the record (unless already set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("job_id", JOB_ID), ("worker_id", WORKER_ID)):
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        parts = [f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if getattr(record, n)]
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, job_id and worker_id when
    known, and exc (the traceback) for errors."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                body[name] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return json.dumps(body, default=str, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for this process (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def uvicorn_log_config(fmt: str) -> dict[str, object] | None:
    """What to hand uvicorn: None in JSON mode (its loggers then propagate to ours, so
    access and error lines are JSON too); its own default config for text."""
    if fmt == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
