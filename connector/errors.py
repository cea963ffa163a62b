"""Every error the connector raises, with the context a person needs at 3 a.m.

    ConnectorError                  base: catch this one
    ├── ConfigError                 a bad setting (``setting``: its key), environment
    │                               variable or config file
    ├── ApiError                    the API answered with an error (project, offset, status,
    │   │                           error_code, error_msg, request_id)
    │   ├── AuthError               401/403: bad or expired credentials, missing permission
    │   ├── InvalidRequestError     400: the server rejected a parameter (HSS.0001 ...)
    │   ├── ThrottledError          429 still after every retry
    │   ├── ServerError             5xx still after every retry
    │   ├── MalformedResponseError  a body that is not the documented JSON, after retries
    │   └── DiscoveryError          IAM listed no project to read in the endpoint's region
    │                               (all_projects), or a list the connector cannot trust
    ├── TransportError              timeouts, resets, refused connections, after retries
    ├── DataLossError               a completeness check failed: the run would lose records
    ├── QuarantineLimitError        more bad records than max_quarantined allows
    └── OutputError                 writing or publishing Parquet failed

Each class says whether it is ``permanent``: running the same task again cannot succeed
(configuration, credentials, a rejected request), so a scheduler should not retry it.
Throttling, server, transport, output and data-check failures are not permanent.

When projects fail differently and none was published, the run's exit code is the first of
``EXIT_PRECEDENCE`` among theirs (``worst_exit_code``): 2 configuration, 5 data check, 3 API,
1 unexpected or output.

Messages never contain a secret: credentials are held in `Secret` and never formatted.
Every subclass keeps its constructor arguments in ``args`` so it pickles (Airflow moves
exceptions between processes).

A message names a setting by its key, ``setting("max_quarantined")``, never by one front
end's spelling (``connector.settings.names``): ``error.settings`` holds the keys it names,
and ``str(error)`` renders each as the front end the error was raised under names it
(``--max-quarantined`` on the command line, ``argument max_quarantined`` for the Airflow
operator, the key itself for the Python API). A pickled error keeps those names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from connector.settings.names import Names, mentioned, names_in_use, render, setting

__all__ = [
    "EXIT_PRECEDENCE",
    "ApiError",
    "AuthError",
    "ConfigError",
    "ConnectorError",
    "DataLossError",
    "DiscoveryError",
    "InvalidRequestError",
    "MalformedResponseError",
    "OutputError",
    "QuarantineLimitError",
    "ServerError",
    "ThrottledError",
    "TransportError",
    "is_permanent",
    "worst_exit_code",
]

_BODY_PREVIEW = 300


def preview(text: str, limit: int = _BODY_PREVIEW) -> str:
    """A single-line, bounded excerpt of a response body for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + f"... ({len(flat)} chars)"


class ConnectorError(Exception):
    """Base class of every error the connector raises on purpose."""

    exit_code = 1
    permanent = False
    """True when retrying the same run cannot help (Airflow fails the task without retries)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        """The text, each setting it names as ``setting(key)`` (``str(error)`` renders them)."""
        self._names: Names | None = names_in_use()

    @property
    def settings(self) -> tuple[str, ...]:
        """The keys of the settings this error names (``max_quarantined``), in order."""
        return mentioned(self.message)

    def __str__(self) -> str:
        return render(self.message, self._names)

    def _kept_names(self) -> dict[str, Any]:
        """The state a copy in another process needs: the names its settings were shown by."""
        return {"_names": _Fixed({key: render(setting(key), self._names) for key in self.settings})}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, {}), self._kept_names())


class _Fixed(dict[str, str]):
    """Names of settings fixed when an error was pickled (a function does not pickle)."""

    def __call__(self, key: str) -> str:
        return self.get(key, key)


class ConfigError(ConnectorError):
    """A setting, environment variable or config value is wrong; nothing was requested.

    ``setting``: the key of the setting at fault, named in front of the message as the
    front end names it (``--out: ...``); ``where``: a place in other words (a file, a
    source such as ``file hss.toml key rate``), which then names it instead.
    """

    exit_code = 2
    permanent = True

    def __init__(
        self, message: str, *, where: str | None = None, setting: str | None = None
    ) -> None:
        place = where if where is not None else _mention(setting)
        super().__init__(f"{place}: {message}" if place else message)
        self.args = (message,)
        self.setting = setting
        self._where = where

    @property
    def by_setting(self) -> bool:
        """Placed by its setting alone, not by a source or a place in other words."""
        return self._where is None and self.setting is not None

    @property
    def where(self) -> str | None:
        """Where the error is: the setting's name, or the place given."""
        place = self._where if self._where is not None else _mention(self.setting)
        return render(place, self._names) if place else None

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"where": self._where, "setting": self.setting}
        return (_rebuild, (type(self), (self.args[0],), kwargs), self._kept_names())


def _mention(key: str | None) -> str | None:
    return None if key is None else setting(key)


class _Located(ConnectorError):
    """An error tied to one page request: project and offset, maybe a request id."""

    exit_code = 3
    retryable = False
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        project_id: str | None = None,
        offset: int | None = None,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        attempts: int | None = None,
    ) -> None:
        self.project_id = project_id
        self.offset = offset
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.attempts = attempts
        super().__init__(self._format(message))
        self.args = (message,)

    def _format(self, message: str) -> str:
        parts: list[str] = []
        if self.project_id is not None:
            parts.append(f"project {self.project_id}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error_code:
            parts.append(f"error_code {self.error_code}")
        if self.error_msg:
            parts.append(f"error_msg {preview(self.error_msg)!r}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        if self.attempts and self.attempts > 1:
            parts.append(f"after {self.attempts} attempts")
        where = f" ({', '.join(parts)})" if parts else ""
        return f"{message}{where}"

    def context(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "offset": self.offset,
            "status": self.status,
            "error_code": self.error_code,
            "error_msg": self.error_msg,
            "request_id": self.request_id,
            "attempts": self.attempts,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.args[0],), self.context()), self._kept_names())


class ApiError(_Located):
    """The API answered with an error status."""


class AuthError(ApiError):
    """Credentials were rejected (401) or lack permission (403, HSS.0010/HSS.0013)."""

    permanent = True


class InvalidRequestError(ApiError):
    """The server rejected the request as invalid (400)."""

    permanent = True


class ThrottledError(ApiError):
    """Still throttled (429) after every retry: lower the rate."""

    retryable = True

    @property
    def limit_per_s(self) -> float | None:
        """The rate the gateway's policy allows, when its message says (``APIG.0308``:
        "... policy user over ratelimit, limit:XX, time:1 second|minute"), per second."""
        found = _POLICY.search(self.error_msg or "")
        if found is None:
            return None
        limit = float(found["limit"])
        per_s = limit / 60 if found["period"] == "minute" else limit
        return per_s if per_s > 0 else None


_POLICY = re.compile(
    r"limit:\s*(?P<limit>\d+(?:\.\d+)?)\s*,\s*time:\s*1\s*(?P<period>second|minute)"
)


class ServerError(ApiError):
    """The server kept failing (5xx) after every retry."""

    retryable = True


class MalformedResponseError(ApiError):
    """The body was not the documented JSON, after every retry."""

    retryable = True


class DiscoveryError(ApiError):
    """``all_projects`` found nothing to read: IAM listed no enabled project of the
    endpoint's region for this credential (or answered a list that cannot be trusted).

    Never a silent success: a run that reads no project would publish nothing and look
    fine. Exit code 3 like the API errors it sits among: IAM was asked and answered, so
    it is not a configuration error found before any request (exit 2); it is neither
    retryable nor worth another run of the same task (``permanent``): asking again gives
    the same list.
    """

    permanent = True


class TransportError(_Located):
    """The request never got an answer: timeout, reset or refused connection."""

    retryable = True


class DataLossError(_Located):
    """A completeness check failed; publishing would lose or duplicate records."""

    exit_code = 5


class QuarantineLimitError(ConnectorError):
    """Too many records failed validation; the project was not published."""

    exit_code = 5


class OutputError(ConnectorError):
    """Writing or publishing the output failed."""

    exit_code = 1


def is_permanent(error_type: str | None) -> bool:
    """Whether the connector error class named ``error_type`` (a report's ``error_type``)
    is permanent; ``False`` for any other name."""
    found = globals().get(error_type or "")
    return isinstance(found, type) and issubclass(found, ConnectorError) and found.permanent


EXIT_PRECEDENCE = (130, 2, 5, 3, 1)
"""Which exit code a run with several failures gives, first first: the one an operator must
act on before the others can be seen to matter.

- 130 interrupted: the run did not finish; nothing else it says is complete.
- 2 configuration: fix the settings; nothing will work until then (and it is permanent).
- 5 data check: records would have been lost or were invalid; a person must look.
- 3 API or authentication: credentials, permissions or the service; often transient.
- 1 unexpected or output: a bug or the disk; the report says which project.
"""


def worst_exit_code(codes: Iterable[int]) -> int:
    """The exit code of several failures (``EXIT_PRECEDENCE``); a code it does not list
    ranks last, 0 only when there is none."""
    found = set(codes) - {0}
    if not found:
        return 0
    ranked = [code for code in EXIT_PRECEDENCE if code in found]
    return ranked[0] if ranked else min(found)


def _rebuild(
    cls: type[ConnectorError], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ConnectorError:
    return cls(*args, **kwargs)
