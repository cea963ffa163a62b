"""``--config FILE``: the run described in TOML, for many projects across regions.

    out = "s3://lake/hss_images"
    region = "cn-north-4"              # default endpoint of projects that name none
    rate = 20
    has_vul = true                     # a filter: at the top level or under [filters]

    [[projects]]
    id = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

    [[projects]]
    id = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    endpoint = "https://hss.example-dedicated-cloud.com"
    enterprise_project_id = "0"        # this project's own filters override the run's

``project_ids`` (a list of ids, or ``"all"``: every project the credentials can access)
may stand in place of ``[[projects]]``.

Secrets never live in this file: credentials come from the environment or a credentials
file (``credentials_file = "..."``). This module only reads the file and names each value
(``file hss.toml key filters.scan_status``); ``connector.settings.keys`` checks the values as it
does flags and connection extras, so an unknown or mistyped key or a bad value is an error
naming the key and the file.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from connector.errors import ConfigError
from connector.settings.keys import CONNECTION_KEYS, FILTER_KEYS, KEYS, Setting

__all__ = ["FILE_KEYS", "load_config_file"]

FILE_KEYS = tuple(key for key in KEYS if key not in (*CONNECTION_KEYS, "projects", "run_id"))
"""The top-level keys (every flag's, and the filters); also the tables ``[filters]`` and
``[[projects]]``. ``all_projects`` is ``project_ids = "all"`` here."""
SECRET_KEYS = {"token", "password", "secret_key", "access_key", "security_token", "sk", "ak"}


def _read(path: str) -> str:
    """The file's text: UTF-8 as TOML requires (a UTF-8 byte-order mark is tolerated)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the config file: {exc.strerror}", where=f"file {path}"
        ) from None
    if b"\x00" in data[:200] and data[:2] not in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise ConfigError(
            "the config file is not UTF-8 text: it holds NUL bytes, so it looks like UTF-16 "
            "without a byte-order mark; TOML files must be UTF-8, so save it as UTF-8",
            where=f"file {path}",
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
            where=f"file {path}",
        ) from None


def load_config_file(path: str) -> dict[str, Setting]:
    """The file's settings, each named ``file PATH key KEY``; the values are not yet checked."""
    import tomllib  # only runs with a config file need it (compiles its patterns at import)

    try:
        raw = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=f"file {path}") from None

    def named(key: str) -> str:
        return f"file {path} key {key}"

    settings: dict[str, Setting] = {}
    for key, value in raw.items():
        if key in SECRET_KEYS:
            raise ConfigError(
                "secrets do not belong in the config file; use the environment "
                "(HSS_AUTH_TOKEN, HSS_ACCESS_KEY/HSS_SECRET_KEY) or credentials_file",
                where=named(key),
            )
        if key not in (*FILE_KEYS, "filters", "projects"):
            raise ConfigError(
                f"unknown key; known keys: {', '.join(sorted([*FILE_KEYS, 'filters', 'projects']))}",
                where=named(key),
            )
        if key != "filters":
            settings[key] = Setting(value, named(key))
    filters = raw.get("filters", {})
    if not isinstance(filters, dict):
        raise ConfigError("expected a [filters] table", where=named("filters"))
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise ConfigError(
                f"unknown filter; known: {', '.join(sorted(FILTER_KEYS))}",
                where=named(f"filters.{key}"),
            )
        if key in settings:
            raise ConfigError(
                f"given twice: also at the top level ({named(key)}); keep one",
                where=named(f"filters.{key}"),
            )
        settings[key] = Setting(value, named(f"filters.{key}"))
    return settings
