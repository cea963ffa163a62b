"""One input layer: raw settings from any source become one checked ``Config``.

A source only gathers what it was given, key by key, as ``Setting(value, source)``, and
calls ``build_config``. The source names where a value came from in every error:

    CLI flags              flag --rate
    the TOML file          file hss.toml key rate   (filters.scan_status, projects[2].endpoint)
    an Airflow connection  connection 'hss_default' extra rate   (login, password)
    operator arguments     argument rate
    the environment        environment HSS_ENDPOINT

Values come raw: text (flags, extras), or numbers, booleans and lists (TOML, JSON extras).
Each key has one parser, so ``"true"``, ``"2.5"`` or ``"2026-11-28"`` mean the same from
every source, and a bad value gets the same message with its own source in front.

A parser turns raw text into a typed value; what a typed value must be (a range, a choice,
a URL, a project id) the dataclasses of ``connector.settings.config`` check, once, also for a
``Config`` built in Python. Their errors name the setting by its key (``ConfigError.setting``)
and ``build_config`` names it by its source instead. A ``[[projects]]`` entry's own values
are checked where the entry is known, so that an error names the entry.

Layers are given highest precedence first (flags, file, environment). A ``None`` value is
"not given" (what argparse holds for a flag not used) and only lends its source's name to
an error about a missing value. An ``endpoint`` or ``region`` hides both in lower layers,
and ``project_ids`` or ``projects`` (the file's ``[[projects]]``) hides both; both of a pair
in one layer is an error naming the two.

Credentials: from ``environ`` and the credential files (``token_file``,
``credentials_file``) for the CLI and the file, or from ``auth``, ``login``, ``password``,
``security_token`` and ``domain`` (an Airflow connection) when ``environ`` is ``None``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, TypeVar

from connector.errors import ConfigError
from connector.job.memory import parse_size
from connector.settings.config import (
    Auth,
    Config,
    FetchSettings,
    Filters,
    IamPassword,
    QuarantineLimit,
    RetryPolicy,
    Secret,
    Target,
    TotalTolerance,
    check_credential,
    check_endpoint,
    check_filter,
    check_project_id,
    endpoint_for_region,
)
from connector.settings.credentials import auth_from_environment
from connector.source.signing import AkSkCredentials

__all__ = [
    "ALL_PROJECTS",
    "AUTH_KINDS",
    "CONNECTION_KEYS",
    "FILTER_KEYS",
    "KEYS",
    "PROJECT_KEYS",
    "TUNING_KEYS",
    "Setting",
    "build_config",
]

ALL_PROJECTS = "all"
"""``project_ids = "all"``: every project the credentials can access (``all_projects``)."""

AUTH_KINDS = ("token", "aksk", "iam")


@dataclass(frozen=True, slots=True)
class Setting:
    """One raw value and where it came from (``flag --rate``)."""

    value: Any
    source: str


Layer = Mapping[str, Setting]
_T = TypeVar("_T")


def _at(where: str, check: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``check(...)``, its ``ConfigError`` re-pointed at ``where`` (the setting kept)."""
    try:
        return check(*args, **kwargs)
    except ConfigError as error:
        raise ConfigError(str(error.args[0]), where=where, setting=error.setting) from None


# ---------------------------------------------------------------- one parser per kind


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected a non-empty text, got {value!r}", where=where)
    return value.strip()


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"expected true or false, got {value!r}", where=where)


def _int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    raise ConfigError(f"expected an integer, got {value!r}", where=where)


def _number(value: Any, where: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None:
        raise ConfigError(f"expected a number, got {value!r}", where=where)
    if not math.isfinite(number):
        raise ConfigError(f"expected a finite number, got {value!r}", where=where)
    return number


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        for parse in (date.fromisoformat, lambda text: datetime.fromisoformat(text).date()):
            with contextlib.suppress(ValueError):
                return parse(value.strip())
    raise ConfigError(f"expected a date like 2026-11-28, got {value!r}", where=where)


def _quarantine(value: Any, where: str) -> QuarantineLimit:
    if isinstance(value, QuarantineLimit):
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        return _at(where, QuarantineLimit.parse, str(value))
    raise ConfigError(
        f"expected a count like 50 or a percentage like 1%, got {value!r}", where=where
    )


def _tolerance(value: Any, where: str) -> TotalTolerance:
    """``total_num_tolerance``: records (``10``) or a percentage (``"0.5%"``), text or number."""
    if isinstance(value, TotalTolerance):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))
    elif isinstance(value, str):
        text = value
    else:
        raise ConfigError(f"expected {TotalTolerance.ACCEPTED}, got {value!r}", where=where)
    try:
        return TotalTolerance.parse(text)
    except ValueError as error:
        raise ConfigError(str(error), where=where) from None


def _projects_cap(value: Any, where: str) -> int | None:
    """``auto`` (no cap beyond memory) or a number of projects."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        return _int(value, where)
    except ConfigError:
        raise ConfigError(f"expected auto or an integer, got {value!r}", where=where) from None


def _size(value: Any, where: str) -> int:
    return parse_size(value, where=where)


def _choice(*choices: str) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        text = _text(value, where)
        if text not in choices:
            raise ConfigError(f"expected one of {', '.join(choices)}, got {value!r}", where=where)
        return text

    return parse


def _auth_kind(value: Any, where: str) -> str:
    return _choice(*AUTH_KINDS)(value.lower() if isinstance(value, str) else value, where)


def _secret_text(value: Any, where: str) -> str:
    """A credential as given (never stripped, never shown); ``Secret`` checks it."""
    if not isinstance(value, str) or not value:
        raise ConfigError("expected a non-empty credential (its value is not shown)", where=where)
    return value


def _secret(value: Any, where: str) -> str:
    """A credential no ``Secret`` holds (a security token), checked here."""
    return check_credential(_secret_text(value, where), where=where)


def _url(value: Any, where: str) -> str:
    return check_endpoint(_text(value, where), where=where)


def _filter(kind: str) -> Callable[[Any, str], Any]:
    """A filter's parser: text to its type (``Filters`` checks the value)."""
    return {"int": _int, "time": _int, "bool": _bool}.get(kind, _text)


def _project_ids(value: Any, where: str) -> tuple[str, ...] | str:
    """A list of project ids, one comma-separated text of them, or ``"all"`` (also as the
    only item of a list: a flag given ``all``); ``Target`` checks each id."""
    only = value[0] if isinstance(value, list | tuple) and len(value) == 1 else value
    if isinstance(only, str) and only.strip().lower() == ALL_PROJECTS:
        return ALL_PROJECTS
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):  # a flag given twice: ["a,b", "c"]
        items = [part for v in value for part in (v.split(",") if isinstance(v, str) else [v])]
    else:
        raise ConfigError(
            f"expected a list of project ids, a comma-separated text or {ALL_PROJECTS!r}, "
            f"got {value!r}",
            where=where,
        )
    ids: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"expected a project id (text), got {item!r}", where=where)
        if item.strip():
            ids.append(item.strip())
    if not ids:
        raise ConfigError("no project id given", where=where)
    return tuple(ids)


FILTER_KEYS = tuple(f.name for f in fields(Filters))
_FILTERS = {f.name: _filter(f.metadata["kind"]) for f in fields(Filters)}
PROJECT_KEYS = ("id", "region", "endpoint", *FILTER_KEYS)
"""What one ``[[projects]]`` entry may hold: its own endpoint and query parameters."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ``[[projects]]`` entry, parsed; its endpoint and filters resolved later."""

    project_id: str
    endpoint: str | None
    filters: dict[str, Any]
    where: str


def _entries(value: Any, where: str) -> list[_Entry]:
    if not isinstance(value, list):
        raise ConfigError("expected [[projects]] entries", where=where)
    entries: list[_Entry] = []
    for number, entry in enumerate(value, start=1):
        at = f"{where}[{number}]"
        if isinstance(entry, str):
            entry = {"id": entry}
        if not isinstance(entry, dict):
            raise ConfigError("expected a table with id (and region or endpoint)", where=at)
        unknown = sorted(set(entry) - set(PROJECT_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r}; known: {', '.join(PROJECT_KEYS)}", where=at
            )
        if "id" not in entry:
            raise ConfigError("missing id", where=at)
        if "region" in entry and "endpoint" in entry:
            raise ConfigError("give region or endpoint, not both", where=at)
        project_id = _at(f"{at}.id", check_project_id, _text(entry["id"], f"{at}.id"))
        endpoint = None
        if "endpoint" in entry:
            endpoint = _text(entry["endpoint"], f"{at}.endpoint")
        elif "region" in entry:
            region = _text(entry["region"], f"{at}.region")
            endpoint = _at(f"{at}.region", endpoint_for_region, region)
        own = {k: _FILTERS[k](v, f"{at}.{k}") for k, v in entry.items() if k in _FILTERS}
        for key, value in own.items():  # the entry's own values, named by the entry's keys
            _at(f"{at}.{key}", check_filter, key, value)
        entries.append(_Entry(project_id, endpoint, own, at))
    return entries


_FETCH = {
    "page_size": "page_size",
    "rate": "rate",
    "burst": "burst",
    "concurrency": "concurrency",
    "connect_timeout": "connect_timeout_s",
    "read_timeout": "read_timeout_s",
    "request_timeout": "request_timeout_s",
    "max_offset": "max_offset",
    "max_repair_rounds": "max_repair_rounds",
    "total_num_tolerance": "total_tolerance",
}
_RETRY = {"max_attempts": "max_attempts", "max_retry_time": "max_elapsed_s"}
TUNING_KEYS = (
    *_FETCH,
    "parallel_projects",
    "memory_limit",
    *_RETRY,
    "max_quarantined",
)
"""The speed and limit settings: flags, file keys and connection extras alike."""

_NUMBERS = ("rate", "burst", "connect_timeout", "read_timeout", "request_timeout", "max_retry_time")

KEYS: dict[str, Callable[[Any, str], Any]] = {
    "out": _text,
    "endpoint": _text,
    "region": _text,
    "discovery_region": _text,
    "project_ids": _project_ids,
    "projects": _entries,
    "snapshot_date": _date,
    "allow_any_snapshot_date": _bool,
    "allow_insecure_http": _bool,
    "skip_published": _bool,
    "report": _text,
    "s3_endpoint": _text,
    "progress": _choice("auto", "bar", "log", "off"),
    "run_id": _text,
    "format": _choice("parquet", "iceberg"),
    "catalog": _text,
    "table": _text,
    **{key: _number if key in _NUMBERS else _int for key in TUNING_KEYS},
    "max_quarantined": _quarantine,
    "total_num_tolerance": _tolerance,
    "parallel_projects": _projects_cap,
    "memory_limit": _size,
    **_FILTERS,
    # credentials: files (CLI, TOML) or an Airflow connection's fields
    "token_file": _text,
    "credentials_file": _text,
    "iam_endpoint": _url,
    "all_projects": _bool,
    "auth": _auth_kind,
    "login": _text,
    "password": _secret_text,
    "security_token": _secret,
    "domain": _text,
}
"""Every setting and its parser."""
CONNECTION_KEYS = ("all_projects", "auth", "login", "password", "security_token", "domain")
"""Settings no config file holds: a flag (``--all-projects``) or an Airflow connection's."""

_PAIRS = (("endpoint", "region"), ("project_ids", "projects"))


# ------------------------------------------------------------------- layers -> Config


def _merge(layers: Sequence[Layer]) -> tuple[dict[str, Setting], dict[str, str]]:
    """The winning setting per key, and the best name of every key (also ones not given)."""
    chosen: dict[str, Setting] = {}
    names: dict[str, str] = {}
    for layer in layers:
        given = {key: s for key, s in layer.items() if s.value is not None}
        for key, setting in layer.items():
            names.setdefault(key, setting.source)
        for pair in _PAIRS:
            here = [given[key] for key in pair if key in given]
            if len(here) == 2:
                raise ConfigError(
                    f"give {pair[0]} or {pair[1]}, not both (also given: {here[1].source})",
                    where=here[0].source,
                )
            if any(key in chosen for key in pair):
                for key in pair:
                    given.pop(key, None)
        for key, setting in given.items():
            chosen.setdefault(key, setting)
    return chosen, names


def build_config(layers: Sequence[Layer], *, environ: Mapping[str, str] | None = None) -> Config:
    """A checked ``Config`` from ``layers`` (highest precedence first); see the module doc.

    Every error is a ``ConfigError`` naming the source of the value that is wrong.
    """
    chosen, names = _merge(layers)
    values: dict[str, Any] = {}
    for key, given in chosen.items():
        parse = KEYS.get(key)
        if parse is None:
            raise ConfigError(f"unknown setting; known: {', '.join(KEYS)}", where=given.source)
        values[key] = parse(given.value, given.source)

    def source(key: str) -> str | None:
        if key == "project_ids" and "projects" in chosen:
            key = "projects"
        return chosen[key].source if key in chosen else None

    def anyhow(key: str) -> str:
        return source(key) or names.get(key, key)

    try:
        return _config(values, anyhow, environ)
    except ConfigError as error:  # a dataclass's check names the setting: name its source
        found = source(error.setting) if error.setting and error.by_setting else None
        if found is None:
            raise
        raise ConfigError(str(error.args[0]), where=found, setting=error.setting) from None


def _config(
    values: dict[str, Any], name: Callable[[str], str], environ: Mapping[str, str] | None
) -> Config:
    allow_http = values.get("allow_insecure_http", False)
    given = {key: values[key] for key in FILTER_KEYS if key in values}
    filters = Filters(**given)
    endpoint: str | None = None
    if "region" in values:
        endpoint = _at(name("region"), endpoint_for_region, values["region"])
    elif "endpoint" in values:
        endpoint = values["endpoint"]  # Config checks it
    all_from = "all_projects" if values.get("all_projects") else None
    ids = values.get("project_ids", ())
    if ids == ALL_PROJECTS:
        ids, all_from = (), "project_ids"
    elif all_from and (ids or values.get("projects")):
        raise ConfigError(
            "reads every project the credentials can access: give no project ids too "
            f"(also given: {name('project_ids' if ids else 'projects')})",
            where=name(all_from),
        )
    if all_from and endpoint is None:
        raise ConfigError(
            "needs an endpoint or a region: the projects are listed in its region",
            where=name(all_from),
        )
    projects: list[Target | str] = list(ids)
    for entry in values.get("projects", []):
        own = endpoint if entry.endpoint is None else entry.endpoint
        if own is None:
            raise ConfigError(
                f"project {entry.project_id!r} has no endpoint: give an endpoint or a region",
                where=entry.where,
            )
        if entry.endpoint is not None:  # named by the entry: Config cannot tell which it was
            check_endpoint(entry.endpoint, allow_http=allow_http, where=f"{entry.where}.endpoint")
        mine = _at(entry.where, Filters, **{**given, **entry.filters}) if entry.filters else None
        if entry.endpoint is None and mine is None:
            projects.append(entry.project_id)  # as a bare id would be: the run's endpoint
        else:
            projects.append(Target(entry.project_id, own, mine, from_run=entry.endpoint is None))
    if ids and endpoint is None:
        raise ConfigError(
            f"project {ids[0]!r} has no endpoint: give an endpoint or a region",
            where=name("project_ids"),
        )
    if not projects and not all_from:
        raise ConfigError(
            "give at least one project id (or all projects)", where=name("project_ids")
        )
    if "out" not in values:
        raise ConfigError("give an output folder or s3:// URL", where=name("out"))
    fetch = FetchSettings(
        **{field: values[key] for key, field in _FETCH.items() if key in values},
        retry=RetryPolicy(**{field: values[key] for key, field in _RETRY.items() if key in values}),
    )
    chosen = {
        key: values[key]
        for key in (
            "snapshot_date",
            "allow_any_snapshot_date",
            "max_quarantined",
            "progress",
            "parallel_projects",
            "memory_limit",
            "s3_endpoint",
            "run_id",
            "skip_published",
            "format",
            "catalog",
            "table",
        )
        if key in values
    }
    return Config(
        projects=tuple(projects),
        endpoint=endpoint,
        out=values["out"],
        auth=_auth(values, name, environ),
        filters=filters,
        fetch=fetch,
        allow_insecure_http=allow_http,
        report_path=values.get("report"),
        all_projects=all_from is not None,
        region=values.get("discovery_region", values.get("region")),
        iam_endpoint=values.get("iam_endpoint"),
        **chosen,
    )


def _auth(
    values: dict[str, Any], name: Callable[[str], str], environ: Mapping[str, str] | None
) -> Auth:
    if environ is not None:
        return auth_from_environment(
            environ,
            token_file=values.get("token_file"),
            credentials_file=values.get("credentials_file"),
            iam_endpoint=values.get("iam_endpoint"),
            names={key: name(key) for key in ("token_file", "credentials_file")},
        )

    def needed(key: str, what: str) -> str:
        if key not in values:
            raise ConfigError(f"{what} is needed", where=name(key))
        return str(values[key])

    def password(what: str) -> Secret:
        if "password" not in values:
            raise ConfigError(f"the password ({what}) is empty", where=name("password"))
        return _at(name("password"), Secret, values["password"])

    kind = values.get("auth", "token")
    if kind == "token":
        return Auth(token=password("the IAM token"))
    if kind == "aksk":
        access_key = needed("login", "the access key")
        secret_key = password("the secret key").reveal()
        return Auth(aksk=AkSkCredentials(access_key, secret_key, values.get("security_token")))
    return Auth(
        iam=IamPassword(
            user=needed("login", "the IAM user name"),
            password=password("of the IAM user"),
            domain=needed("domain", "the account (domain) name of the IAM user"),
            iam_endpoint=values.get("iam_endpoint"),
        )
    )
