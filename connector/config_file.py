"""``--config FILE``: the run described in TOML, for many projects across regions.

    out = "s3://lake/hss_images"
    region = "cn-north-4"              # default endpoint of projects that name none
    rate = 20

    [filters]
    has_vul = true

    [[projects]]
    id = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

    [[projects]]
    id = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    endpoint = "https://hss.example-dedicated-cloud.com"

Secrets never live in this file: credentials come from the environment or a credentials
file (``credentials_file = "..."``). Every key is checked; an unknown or mistyped one is an
error naming the key and the file.
"""

from __future__ import annotations

import codecs
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import Filters, Target, check_endpoint, check_filter, endpoint_for_region
from .errors import ConfigError

__all__ = ["SETTINGS", "FileSettings", "load_config_file"]

SETTINGS: dict[str, type | tuple[type, ...]] = {
    "out": str,
    "endpoint": str,
    "region": str,
    "snapshot_date": str,
    "report": str,
    "token_file": str,
    "credentials_file": str,
    "iam_endpoint": str,
    "s3_endpoint": str,
    "allow_insecure_http": bool,
    "allow_any_snapshot_date": bool,
    "page_size": int,
    "rate": (int, float),
    "burst": int,
    "concurrency": int,
    "parallel_projects": int,
    "max_attempts": int,
    "max_retry_time": (int, float),
    "connect_timeout": (int, float),
    "read_timeout": (int, float),
    "request_timeout": (int, float),
    "max_offset": int,
    "max_repair_rounds": int,
    "max_quarantined": (str, int),
    "progress": str,
}
SECRET_KEYS = {"token", "password", "secret_key", "access_key", "security_token", "sk", "ak"}
FILTER_TYPES = {"str": str, "int": int, "time": int, "bool": bool}


class FileSettings(dict[str, Any]):
    """Validated settings from the file; ``projects`` holds ``Target``s or bare ids."""


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {"str": "text", "int": "integer", "float": "number", "bool": "true/false"}[k.__name__]
        for k in kinds
    )


def _check(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(f"expected {_type_name(kind)}, got {value!r}", where=where)
    if not isinstance(value, kinds):
        raise ConfigError(f"expected {_type_name(kind)}, got {value!r}", where=where)
    return value


def _read(path: str) -> str:
    """The file's text: UTF-8 as TOML requires (a UTF-8 byte-order mark is tolerated)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", where=path) from None
    if b"\x00" in data[:200] and data[:2] not in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise ConfigError(
            "the config file is not UTF-8 text: it holds NUL bytes, so it looks like UTF-16 "
            "without a byte-order mark; TOML files must be UTF-8, so save it as UTF-8",
            where=path,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = {codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16"}.get(data[:2])
        looks = (
            f"it looks like {bom} (it starts with a {bom} byte-order mark)"
            if bom
            else (f"byte {exc.start} ({data[exc.start : exc.start + 1]!r}) is not UTF-8")
        )
        raise ConfigError(
            f"the config file is not UTF-8 text: {looks}; TOML files must be UTF-8, so save "
            "it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)",
            where=path,
        ) from None


def load_config_file(path: str) -> FileSettings:
    try:
        raw = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=path) from None
    settings = FileSettings()
    for key, value in raw.items():
        where = f"{path}: {key}"
        if key in SECRET_KEYS:
            raise ConfigError(
                "secrets do not belong in the config file; use the environment "
                "(HSS_AUTH_TOKEN, HSS_ACCESS_KEY/HSS_SECRET_KEY) or credentials_file",
                where=where,
            )
        if key == "filters":
            settings["filters"] = _filters(value, path)
        elif key == "projects":
            continue
        elif key in SETTINGS:
            settings[key] = _check(value, SETTINGS[key], where)
        else:
            raise ConfigError(
                f"unknown key; known keys: {', '.join(sorted([*SETTINGS, 'filters', 'projects']))}",
                where=where,
            )
    settings["projects"] = _projects(raw.get("projects", []), path, settings)
    return settings


def _filters(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError("expected a [filters] table", where=f"{path}: filters")
    known = {f.name: f.metadata["kind"] for f in fields(Filters)}
    for key, item in value.items():
        where = f"{path}: filters.{key}"
        if key not in known:
            raise ConfigError(f"unknown filter; known: {', '.join(sorted(known))}", where=where)
        _check(item, FILTER_TYPES[known[key]], where)
        check_filter(key, item, where=where)
    return dict(value)


def _projects(value: Any, path: str, settings: FileSettings) -> list[str | Target]:
    if not isinstance(value, list):
        raise ConfigError("expected [[projects]] entries", where=f"{path}: projects")
    projects: list[str | Target] = []
    allow_http = bool(settings.get("allow_insecure_http", False))
    for number, entry in enumerate(value, start=1):
        where = f"{path}: projects[{number}]"
        if isinstance(entry, str):
            projects.append(entry)
            continue
        if not isinstance(entry, dict):
            raise ConfigError("expected a table with id (and region or endpoint)", where=where)
        unknown = set(entry) - {"id", "region", "endpoint"}
        if unknown:
            raise ConfigError(
                f"unknown key {sorted(unknown)[0]!r}; known: id, region, endpoint", where=where
            )
        if "id" not in entry:
            raise ConfigError("missing id", where=where)
        project_id = _check(entry["id"], str, f"{where}.id")
        if "region" in entry and "endpoint" in entry:
            raise ConfigError("give region or endpoint, not both", where=where)
        if "endpoint" in entry:
            endpoint = check_endpoint(
                _check(entry["endpoint"], str, f"{where}.endpoint"),
                allow_http=allow_http,
                where=f"{where}.endpoint",
            )
            projects.append(Target(project_id, endpoint))
        elif "region" in entry:
            projects.append(
                Target(
                    project_id, endpoint_for_region(_check(entry["region"], str, f"{where}.region"))
                )
            )
        else:
            projects.append(project_id)
    return projects
