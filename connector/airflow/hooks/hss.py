"""The HSS hook: an Airflow Connection (type ``hss``) read as a ``connector.Config``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from connector import Config, ConfigError, ConnectorError, Filters
from connector.airflow._sdk import (
    BaseHook,
    mask,
)
from connector.airflow.provider import CONN_FIELDS, CONN_TYPE, HOOK_NAME, UI_FIELD_BEHAVIOUR
from connector.redaction import Redactor
from connector.settings.config import check_project_id, endpoint_for_region
from connector.settings.keys import (
    ALL_PROJECTS,
    FILTER_KEYS,
    KEYS,
    TUNING_KEYS,
    Setting,
    build_config,
)
from connector.settings.names import naming

DEFAULT_CONN_ID = "hss_default"

AUTH_KINDS = ("token", "aksk", "iam")

EXTRA_KEYS = (
    "auth",
    "region",
    "endpoint",
    "discovery_region",
    "project_ids",
    "security_token",
    "domain",
    "iam_endpoint",
    "allow_insecure_http",
    "skip_published",
    "format",
    "catalog",
    "table",
    *TUNING_KEYS,
    *FILTER_KEYS,
)
"""The extras the hook reads: the form's fields (``connector.airflow.provider``), and every speed
setting and filter as the CLI's flags and the config file's keys have them."""


_T = TypeVar("_T")


def connection_name(conn_id: str, key: str) -> str:
    """A setting as an Airflow connection names it, in every message: its extra
    (``connection 'hss_default' extra max_quarantined``), its login or password field, else
    an argument of ``HssHook.get_config`` (``argument out``)."""
    if key in EXTRA_KEYS:
        return f"connection {conn_id!r} extra {key}"
    if key in ("login", "password", "host", "port", "schema"):
        return f"connection {conn_id!r} {key}"
    return f"argument {key}"


def _same_url(a: str, b: str) -> bool:
    """Two endpoint URLs name one place: scheme and host in any case, a default port
    written or not, a trailing slash or not."""

    def key(url: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        try:
            port = parts.port or {"https": 443, "http": 80}.get(scheme)
        except ValueError:
            port = None
        return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")

    return key(a) == key(b)


def _run_coroutine(start: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to its end from synchronous code, also where an event loop is
    already running in this thread (an async web server): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(start())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(start())).result()


class HssHook(BaseHook):  # type: ignore[misc]
    """Reads an Airflow Connection and turns it into a ``connector.Config``."""

    conn_name_attr = "hss_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(self, hss_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hss_conn_id = hss_conn_id
        self._connection: Any = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and explained standard fields of the connection form.

        Airflow 3.2+ reads the same from the provider info (``connector.airflow.provider``); this
        is the per-hook form of older versions.
        """
        return copy.deepcopy(UI_FIELD_BEHAVIOUR)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields, from ``connector.airflow.provider.CONN_FIELDS``.

        Imports the web server's form libraries (present where Airflow draws the form, not
        needed anywhere else); Airflow 3.2+ reads ``conn-fields`` from the provider info
        instead and never calls this.
        """
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, PasswordField, StringField
        from wtforms.validators import NumberRange, Optional

        widgets: dict[str, Any] = {}
        for key, spec in CONN_FIELDS.items():
            label = lazy_gettext(spec["label"])
            schema = spec["schema"]
            kinds = schema["type"]
            described = {"description": spec.get("description", "")}
            if schema.get("format") == "password":
                widgets[key] = PasswordField(label, widget=BS3PasswordFieldWidget(), **described)
            elif "boolean" in kinds:
                widgets[key] = BooleanField(label, default=schema.get("default"), **described)
            elif "integer" in kinds:
                widgets[key] = IntegerField(
                    label,
                    validators=[Optional(), NumberRange(min=schema.get("minimum"))],
                    widget=BS3TextFieldWidget(),
                    **described,
                )
            else:  # text, and numbers as text (only these four field classes are allowed)
                widgets[key] = StringField(label, widget=BS3TextFieldWidget(), **described)
        return widgets

    def test_connection(self) -> tuple[bool, str]:
        """Read one small page (``limit`` 10) of the connection's first project (with
        ``project_ids`` ``all``: the first project IAM lists for the region).

        ``(True, what was read)`` or ``(False, "ErrorType: message")`` with the API's
        ``error_code`` and HTTP status; the message never holds a secret. This is what the
        connection form's "Test" button and ``airflow connections test`` call (with
        ``AIRFLOW__CORE__TEST_CONNECTION=Enabled``).
        """
        with naming(self.setting_name):
            return self._test_connection()

    def _test_connection(self) -> tuple[bool, str]:
        from connector.job.check import probe_async

        redactor = Redactor()
        try:
            with contextlib.suppress(Exception):  # whatever else fails, never echo this
                redactor.add(self.get_conn().password)
            # a probe writes nothing: the output folder is required by Config, never used
            config = self.get_config(out=".")
            if not config.all_projects:  # else the first project IAM lists
                config = replace(config, projects=config.projects[:1])
            redactor.add(*config.auth.secrets())
            [result] = _run_coroutine(lambda: probe_async(config, projects=1, redactor=redactor))
        except ConnectorError as error:
            return False, redactor(f"{type(error).__name__}: {error}")
        except Exception as error:  # a test must answer, not raise: one redacted line
            message = " ".join(str(error).split()) or "no message"
            return False, redactor(f"{type(error).__name__}: {message} (unexpected)")
        if not result.ok:
            return False, f"{result.error_type}: {result.error}"
        return True, (
            f"read project {result.project_id} at {result.endpoint} ({config.auth.kind} auth): "
            f"{result.total_num} image(s) visible"
        )

    def get_conn(self) -> Any:
        """The Airflow Connection (fetched once per hook)."""
        if self._connection is None:
            self._connection = self.get_connection(self.hss_conn_id)
        return self._connection

    def setting_name(self, key: str) -> str:
        """A setting as this connection names it (``connection_name``)."""
        return connection_name(self.hss_conn_id, key)

    def _extras(self) -> dict[str, Any]:
        extras = self.get_conn().extra_dejson
        if not isinstance(extras, dict):
            raise ConfigError(
                "the extra field must be a JSON object",
                where=f"connection {self.hss_conn_id!r}",
            )
        # the connection form saves its fields as extras: a field left empty is null, and
        # older forms prefix each key with extra__hss__
        prefix = f"extra__{CONN_TYPE}__"
        extras = {k.removeprefix(prefix): v for k, v in extras.items() if v is not None}
        unknown = sorted(set(extras) - set(EXTRA_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(map(repr, unknown))}; known keys: "
                f"{', '.join(EXTRA_KEYS)}",
                where=f"connection {self.hss_conn_id!r} extra {unknown[0]}",
            )
        return dict(extras)

    def raw_settings(self) -> dict[str, Setting]:
        """The connection as raw settings, each named by its field (``connector.settings.keys``).

        Secrets (the password, a security token) are registered with Airflow's masker here.
        """
        conn = self.get_conn()
        extras = self._extras()
        for secret in (conn.password, extras.get("security_token")):
            if isinstance(secret, str) and secret:
                mask(secret)
        layer = {key: Setting(extras.get(key), self.setting_name(key)) for key in EXTRA_KEYS}
        host = self.host_endpoint()
        if host is not None:
            self._agree(host, extras)
            if extras.get("endpoint") is None and extras.get("region") is None:
                layer["endpoint"] = Setting(host, self.setting_name("host"))
        layer["login"] = Setting(conn.login or None, self.setting_name("login"))
        layer["password"] = Setting(conn.password or None, self.setting_name("password"))
        return layer

    def host_endpoint(self) -> str | None:
        """The endpoint the connection's Host, Port and Schema fields name (a URI's
        ``hss://...@HOST:PORT/SCHEMA``), or None without a host: ``https://HOST[:PORT]``,
        ``http://`` with Schema ``http`` (checked as every endpoint is: plain http only to
        loopback or with ``allow_insecure_http``). A Host written as a URL
        (``https://hss.example``) keeps its scheme."""
        conn = self.get_conn()
        host = (getattr(conn, "host", None) or "").strip()
        if not host:
            return None
        port = getattr(conn, "port", None)
        schema = (getattr(conn, "schema", None) or "").strip().lower()
        if schema not in ("", "http", "https"):
            raise ConfigError(
                f"the scheme of the endpoint: https (default) or http, got {schema!r}",
                where=self.setting_name("schema"),
            )
        if "://" in host:
            scheme, _, rest = host.partition("://")
            if schema and schema != scheme.lower():
                raise ConfigError(
                    f"names scheme {scheme}://, the schema field {schema}: give one of them",
                    where=self.setting_name("host"),
                )
            schema, host = scheme.lower(), rest.rstrip("/")
        if host.count(":") > 1 and not host.startswith("["):  # IPv6, as a URI gives it
            host = f"[{host}]"
        if port is not None:
            if urlsplit(f"//{host}").port is not None:
                raise ConfigError(
                    f"holds a port and the port field is {port}: give one of them",
                    where=self.setting_name("host"),
                )
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigError(
                    f"expected a TCP port (1-65535), got {port!r}", where=self.setting_name("port")
                )
            host = f"{host}:{port}"
        return f"{schema or 'https'}://{host}"

    def _agree(self, host: str, extras: Mapping[str, Any]) -> None:
        """The Host field and an ``endpoint`` or ``region`` extra must name one endpoint."""
        for key in ("endpoint", "region"):
            value = extras.get(key)
            if value is None:
                continue
            if key == "region":
                try:
                    value = endpoint_for_region(str(value))
                except ConfigError:
                    continue  # an unknown region: build_config names it
            if not _same_url(host, str(value)):
                raise ConfigError(
                    f"names the endpoint {host}, but {self.setting_name(key)} names "
                    f"{value}: give the endpoint once (the host, or the extra), or make them "
                    "agree",
                    where=self.setting_name("host"),
                )

    def project_ids(self) -> list[str]:
        """The connection's ``project_ids`` extra (to list them; a sync reads them all);
        with ``all``, the projects IAM lists for the region (``discover_project_ids``)."""
        with naming(self.setting_name):
            where = self.setting_name("project_ids")
            value = self._extras().get("project_ids")
            if value is None:
                raise ConfigError(
                    "no project ids: set this extra (a list, or a comma-separated string)",
                    where=where,
                )
            ids = KEYS["project_ids"](value, where)
            if ids == ALL_PROJECTS:
                return list(self.discover_project_ids())
            return [check_project_id(project_id) for project_id in ids]

    def discover_project_ids(self) -> tuple[str, ...]:
        """The projects the connection's credential can access in its endpoint's region,
        listed through IAM as ``all_projects`` lists them (for fanning out one task per
        project over ``project_ids: all``). Raises ``DiscoveryError`` for an empty list."""
        from connector.source.readers import open_readers

        with naming(self.setting_name):
            config = self.get_config(out=".", projects="all")  # lists, writes nothing
            redactor = Redactor(config.auth.secrets())

            async def listing() -> tuple[str, ...]:
                async with open_readers(config, redactor=redactor) as readers:
                    return tuple(t.project_id for t in readers.config.targets)

            return _run_coroutine(listing)

    def get_config(self, **overrides: Any) -> Config:
        """A ``Config`` from the connection; ``overrides`` are ``Config`` fields.

        ``out`` is required. ``projects`` (ids, a comma-separated string or ``"all"``)
        replaces the connection's ``project_ids``; ``rate``, ``concurrency`` and every other
        setting replace the connection's; ``filters`` (a ``Filters`` or a dict of raw
        values) replaces the connection's filters key by key, its enterprise project too;
        ``fetch`` and ``auth`` replace what the connection gives. Progress is logged every
        few seconds (``progress="log"``) unless overridden. Each argument is named
        ``argument KEY`` in an error.
        """
        with naming(self.setting_name):
            return self._config(overrides)

    def _config(self, overrides: dict[str, Any]) -> Config:
        known = {f.name for f in fields(Config)} | {"rate", "concurrency"}
        unexpected = sorted(set(overrides) - known)
        if unexpected:
            raise TypeError(f"get_config() got unexpected argument(s): {', '.join(unexpected)}")
        given: dict[str, Setting] = {"out": Setting(None, "argument out")}
        objects = {key: overrides.pop(key) for key in ("fetch", "auth") if key in overrides}
        filters = overrides.pop("filters", None)
        if isinstance(filters, Filters):
            filters = {f.name: getattr(filters, f.name) for f in fields(Filters)}
        if filters is not None and not isinstance(filters, Mapping):
            raise ConfigError(f"expected a dict, got {filters!r}", where="argument filters")
        for name, value in (filters or {}).items():
            where = f"argument filters.{name}"
            if name not in FILTER_KEYS:
                raise ConfigError(f"unknown filter; known: {', '.join(FILTER_KEYS)}", where=where)
            if value != "":  # a templated filter that rendered empty is no filter
                given[name] = Setting(value, where)
        renamed = {"projects": "project_ids", "report_path": "report"}
        for key, value in overrides.items():
            key = renamed.get(key, key)
            given[key] = Setting(value, f"argument {key}")
        default = {"progress": Setting("log", "default")}
        config = build_config([given, self.raw_settings(), default])
        if objects:
            config = replace(config, **objects)
        self.log.info(
            "connection %r: %s auth, endpoint %s, %s",
            self.hss_conn_id,
            config.auth.kind,
            config.endpoint,
            "all projects" if config.all_projects else f"{len(config.projects)} project(s)",
        )
        return config
