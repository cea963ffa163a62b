"""Log records that know their run and project, written as text or as one JSON object a line.

    RUN_ID, PROJECT      context variables: the pipeline sets the run's id when it starts and
                         a project's id when that project's task starts; asyncio tasks and
                         ``asyncio.to_thread`` copy them, so every record logged on the
                         project's behalf (its workers, its retries, its publishing) has them
    ContextFilter        puts them on each record of the ``connector`` logger
                         (``record.run_id``, ``record.project``), without touching any log call
    JsonFormatter        ``--log-format json``: time, level, logger, message, run_id, project,
                         then the record's structured fields (``extra=``: offset, status,
                         error_code, records, percent, ...), secrets redacted
    error_fields(error)  the structured fields of an error, for ``extra=``

Secrets: the ``RedactingFilter`` on the handler cleans the message and the traceback, as for
the text format; the JSON formatter passes the structured fields through the same
``Redactor`` (a server's ``error_msg`` may quote a token).

Airflow: the operator leaves logging to Airflow. The filter only adds two attributes to the
connector's records, which Airflow's own formatting ignores.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from connector.errors import ConnectorError
from connector.redaction import Redactor

__all__ = [
    "LOG_FORMATS",
    "PROJECT",
    "RUN_ID",
    "ContextFilter",
    "JsonFormatter",
    "LogFormat",
    "error_fields",
    "run_context",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

RUN_ID: ContextVar[str | None] = ContextVar("hss_run_id", default=None)
PROJECT: ContextVar[str | None] = ContextVar("hss_project", default=None)

log = logging.getLogger("connector")

# what every LogRecord has: anything else on a record came from ``extra=`` (or a filter)
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "run_id", "project"}
)


class ContextFilter(logging.Filter):
    """Adds ``run_id`` and ``project`` from the context to every record (``None`` outside
    a run or a project); a value given with ``extra=`` is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = RUN_ID.get()
        if getattr(record, "project", None) is None:
            record.project = PROJECT.get()
        return True


@contextlib.contextmanager
def run_context(run_id: str) -> Iterator[None]:
    """Records logged inside carry ``run_id`` (and ``project`` where a task set it)."""
    token = RUN_ID.set(run_id)
    context = ContextFilter()
    log.addFilter(context)
    try:
        yield
    finally:
        log.removeFilter(context)
        RUN_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (Loki, Elasticsearch, CloudWatch, ...)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor if redactor is not None else Redactor()

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None) or RUN_ID.get(),
            "project": getattr(record, "project", None) or PROJECT.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["traceback"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        clean = self.redactor.scrub(data)
        return orjson.dumps(clean, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def error_fields(error: BaseException) -> dict[str, Any]:
    """``error_type``, ``exit_code`` and, for an error about a request, its offset, HTTP
    status, error_code, error_msg, request id and attempts (those that are known)."""
    fields: dict[str, Any] = {"error_type": type(error).__name__}
    if isinstance(error, ConnectorError):
        fields["exit_code"] = error.exit_code
        context = getattr(error, "context", None)
        if callable(context):
            for key, value in context().items():
                if value is not None and key != "project_id":
                    fields[key] = value
    return fields
