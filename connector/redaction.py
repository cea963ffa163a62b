"""Secrets out of every text the connector emits: log lines, errors, the summary, the report.

A run knows its secrets: the configured ones (token, secret key, security token, IAM
password) and the ones it meets while running (tokens obtained from IAM, registered by the
client as it sends them). Text from anywhere, the server's ``error_msg`` included, passes
through one ``Redactor`` before it reaches a person or a file:

- log lines: ``RedactingFilter`` on the ``connector`` logger (message, arguments, traceback);
- the run report and its summary: ``RunReport.to_dict`` / ``summary`` (every string in it);
- errors printed by the CLI or raised by the Airflow operator: built from those.

Values shorter than six characters are not secrets worth the name and would blank out
innocent text (a one-letter test token inside a run id), so they are left alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import orjson

__all__ = ["MASK", "RedactingFilter", "Redactor"]

MASK = "***"
MIN_SECRET_LENGTH = 6


def _forms(secret: str) -> set[str]:
    """The secret as it may appear in text: raw, percent-encoded, escaped inside JSON."""
    return {
        secret,
        quote(secret, safe=""),
        orjson.dumps(secret).decode()[1:-1],
    }


class Redactor:
    """Replaces every known secret value with ``***``; learns new secrets as they appear."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._known: frozenset[str] = frozenset()
        self._forms: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Register secret values (``None`` and short values are ignored)."""
        fresh = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH} - self._known
        if not fresh:
            return
        with self._lock:
            known = self._known | fresh
            forms = {form for secret in known for form in _forms(secret)}
            # longest first, so a secret containing another is masked whole
            self._forms = tuple(sorted(forms, key=len, reverse=True))
            self._known = known

    def __bool__(self) -> bool:
        return bool(self._known)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        """``value`` with every string in it (keys too) redacted: dicts, lists, tuples."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        return value

    def __repr__(self) -> str:
        return f"Redactor({len(self._known)} secrets)"


class RedactingFilter(logging.Filter):
    """No known secret reaches a log line: the message, its arguments or its traceback."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor:
            return True
        message = record.getMessage()
        clean = self.redactor(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True
