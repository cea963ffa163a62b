"""Airflow integration: a hook over an Airflow Connection and an operator over ``run``.

    from connector.airflow import HssImageSyncOperator

    HssImageSyncOperator.partial(task_id="sync", out="/lake/hss_images").expand(
        project_ids=["0a1b...", "9f8e..."]  # one mapped task per project
    )

Needs Apache Airflow 3 (``pip install 'hss-image-connector[airflow]'``); the rest of the
package never imports this module. Both classes only translate Airflow things into a
``connector.Config``; everything else is ``connector.run``.

The connection (default id ``hss_default``, connection type ``hss``: the package registers
it with Airflow as a provider, see ``connector.provider``, so the connection form shows the
fields below and its "Test" button reads one page; any other type, e.g. ``generic``, works
too):

    password                 the IAM token (``auth`` = ``token``, the default), the secret
                             key (``aksk``) or the IAM user's password (``iam``)
    login                    the access key (``aksk``) or the IAM user name (``iam``)
    extra auth               ``token`` | ``aksk`` | ``iam``
    extra region | endpoint  a public-cloud region (``cn-north-4``) or an endpoint URL
    extra project_ids        a list, a comma-separated string, or ``all`` (every project the
                             credentials can access in the region: ``Config.all_projects``)
    extra security_token     temporary AK/SK credentials only
    extra domain             the account (domain) name of an IAM user (``iam`` only)
    extra iam_endpoint       IAM endpoint (``iam`` only; derived from a public-cloud region)
    extra rate, concurrency  requests per second (0 = no limit) and requests in flight
    extra allow_insecure_http  true to allow http:// to a non-loopback endpoint
    extra enterprise_project_id  the enterprise project to read (default ``all_granted_eps``:
                             every one the credentials may see; the API's own default ``0``
                             is only the default enterprise project)
    extra page_size, has_vul, ...  any other speed setting or filter, named and read as
                             the config file's keys are (``connector.settings``)

The snapshot date is the UTC date the task reads the inventory on, not the run's logical
date: the API has no history. A run whose logical date is older than yesterday (a backfill,
a catch-up run, a cleared old run) is skipped with a message instead of writing today's
inventory under a day that is over.

The hook only gathers the connection's fields and the operator's arguments;
``connector.settings.build_config`` reads them exactly as it reads flags and file keys. A
mistake is a ``ConfigError`` naming the connection and the extra (``connection
'hss_default' extra rate: ...``) or the argument (``argument rate: ...``). Whether a task
is retried is the error's ``permanent`` flag (``connector.errors``).
Secrets are held in ``connector.Secret``, registered with Airflow's log masker and never
logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import importlib.metadata
import importlib.util
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import Config, ConfigError, ConnectorError, Filters, RunReport
from .config import check_snapshot_date
from .errors import is_permanent
from .lineage import SyncFacts, datasets, lake
from .provider import CONN_FIELDS, CONN_TYPE, HOOK_NAME, UI_FIELD_BEHAVIOUR
from .redaction import Redactor
from .settings import ALL_PROJECTS, FILTER_KEYS, KEYS, TUNING_KEYS, Setting, build_config

_INSTALL_HINT = "pip install 'hss-image-connector[airflow]'"


def _missing_airflow_message() -> str:
    """Why ``airflow.sdk`` cannot be imported: Airflow missing, or one without the SDK."""
    try:
        installed = importlib.util.find_spec("airflow") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return f"connector.airflow needs Apache Airflow 3, which is not installed: {_INSTALL_HINT}"
    try:
        version = f" (found apache-airflow {importlib.metadata.version('apache-airflow')})"
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return (
        "connector.airflow needs Apache Airflow 3, whose authoring API is airflow.sdk; the "
        f"installed Airflow does not provide it{version}: {_INSTALL_HINT}"
    )


try:
    from airflow.sdk import Asset, BaseHook, BaseOperator
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )
except ImportError as _error:
    raise ImportError(_missing_airflow_message()) from _error

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["DEFAULT_CONN_ID", "HssHook", "HssImageSyncOperator", "lake_asset"]

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
    *TUNING_KEYS,
    *FILTER_KEYS,
)
"""The extras the hook reads: the form's fields (``connector.provider``), and every speed
setting and filter as the CLI's flags and the config file's keys have them."""

ON_KILL_WAIT_S = 60.0
"""How long ``on_kill`` called from another thread waits for the run to clean up."""


def _mask(secret: str) -> None:
    """Register a secret with Airflow's log masker (best effort)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - an Airflow without the task-SDK masker
        return
    mask_secret(secret)


_T = TypeVar("_T")


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

        Airflow 3.2+ reads the same from the provider info (``connector.provider``); this
        is the per-hook form of older versions.
        """
        return copy.deepcopy(UI_FIELD_BEHAVIOUR)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields, from ``connector.provider.CONN_FIELDS``.

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
        from .check import probe_async

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

    def _where(self, key: str) -> str:
        return f"connection {self.hss_conn_id!r} extra {key}"

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
                where=self._where(unknown[0]),
            )
        return dict(extras)

    def raw_settings(self) -> dict[str, Setting]:
        """The connection as raw settings, each named by its field (``connector.settings``).

        Secrets (the password, a security token) are registered with Airflow's masker here.
        """
        conn, at = self.get_conn(), f"connection {self.hss_conn_id!r}"
        extras = self._extras()
        for secret in (conn.password, extras.get("security_token")):
            if isinstance(secret, str) and secret:
                _mask(secret)
        layer = {key: Setting(extras.get(key), self._where(key)) for key in EXTRA_KEYS}
        layer["login"] = Setting(conn.login or None, f"{at} login")
        layer["password"] = Setting(conn.password or None, f"{at} password")
        return layer

    def project_ids(self) -> list[str]:
        """The connection's ``project_ids`` extra (for fanning out one task per project);
        with ``all``, the projects IAM lists for the region (``discover_project_ids``)."""
        where = self._where("project_ids")
        value = self._extras().get("project_ids")
        if value is None:
            raise ConfigError(
                "no project ids: set this extra (a list, or a comma-separated string)",
                where=where,
            )
        ids = KEYS["project_ids"](value, where)
        if ids == ALL_PROJECTS:
            return list(self.discover_project_ids())
        return list(ids)

    def discover_project_ids(self) -> tuple[str, ...]:
        """The projects the connection's credential can access in its endpoint's region,
        listed through IAM as ``--all-projects`` lists them (for fanning out one task per
        project over ``project_ids: all``). Raises ``DiscoveryError`` for an empty list."""
        from .discovery import discover_projects
        from .transport import open_transport

        config = self.get_config(out=".", projects="all")  # lists, writes nothing
        redactor = Redactor(config.auth.secrets())

        async def listing() -> tuple[str, ...]:
            async with open_transport(config.fetch) as transport:
                found = await discover_projects(config, transport, redactor=redactor)
            return found.project_ids

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


def _snapshot_date(value: Any) -> date:
    result: date = KEYS["snapshot_date"](value, "argument snapshot_date")
    return result


class HssImageSyncOperator(BaseOperator):  # type: ignore[misc]
    """Sync the HSS local image list of some projects into hive-partitioned Parquet.

    :param out: output folder or ``s3://bucket/prefix`` (templated)
    :param project_ids: a project id, a list of them or a comma-separated string (templated;
        default: the connection's ``project_ids``); map over it to run one task per project
    :param hss_conn_id: the Airflow Connection (templated; see the module docstring)
    :param snapshot_date: the ``snapshot_date`` partition (templated). Default: the UTC date
        the task reads the inventory on, whatever the run's logical date; a run whose logical
        date is older than yesterday (a backfill, catch-up or cleared old run) is then skipped
        (``AirflowSkipException``) rather than writing today's inventory under that day. A
        date given here must be today or yesterday unless ``allow_any_snapshot_date``.
    :param allow_any_snapshot_date: accept any ``snapshot_date``: label today's inventory
        with that date on purpose (the report says ``"snapshot_date_origin": "opt-in"``)
    :param filters: API query parameters, the fields of ``connector.Filters`` (templated);
        ``enterprise_project_id`` defaults to the connection's, else ``all_granted_eps``
    :param rate: requests per second (default: the connection's, else the connector's);
        mapped tasks running at the same time each use this rate
    :param concurrency: requests in flight (default: the connection's, else the connector's)
    :param max_quarantined: a count (``50``) or a share (``"1%"``) of invalid records
        tolerated before a project is not published (templated)

    Returns (XCom ``return_value``) the run report, ``RunReport.to_dict()``. When a project
    fails the task fails with the connector's error (``ErrorType: message`` per project) and
    the report is still pushed, as XCom ``report``. Configuration, authentication and
    rejected-request errors fail the task without retries (``AirflowFailException``).
    """

    template_fields: Sequence[str] = (
        "hss_conn_id",
        "out",
        "snapshot_date",
        "project_ids",
        "filters",
        "rate",
        "concurrency",
        "max_quarantined",
    )
    template_fields_renderers = {"filters": "json", "project_ids": "json"}
    ui_color = "#fde2e2"

    def __init__(
        self,
        *,
        out: str,
        project_ids: str | Sequence[str] | None = None,
        hss_conn_id: str = DEFAULT_CONN_ID,
        snapshot_date: str | date | None = None,
        allow_any_snapshot_date: bool = False,
        filters: Mapping[str, Any] | None = None,
        rate: float | None = None,
        concurrency: int | None = None,
        max_quarantined: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and isinstance(out, str) and "{{" not in out:
            kwargs["outlets"] = [lake_asset(out)]
        super().__init__(**kwargs)
        self._running: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any], int] | None = None
        self._killed = threading.Event()
        self._finished = threading.Event()
        self._finished.set()
        self._lineage: SyncFacts | None = None
        self.out = out
        self.project_ids = project_ids
        self.hss_conn_id = hss_conn_id
        self.snapshot_date = snapshot_date
        self.allow_any_snapshot_date = allow_any_snapshot_date
        self.filters = filters
        self.rate = rate
        self.concurrency = concurrency
        self.max_quarantined = max_quarantined

    def _given_snapshot_date(self) -> date | None:
        """The ``snapshot_date`` argument, checked (``None``: the date of reading)."""
        if self.snapshot_date is None or self.snapshot_date == "":
            return None
        given = _snapshot_date(self.snapshot_date)
        allow = KEYS["allow_any_snapshot_date"](
            self.allow_any_snapshot_date, "argument allow_any_snapshot_date"
        )
        try:
            check_snapshot_date(given, allow_any=allow)
        except ConfigError as error:
            message = str(error.args[0]).replace(
                "pass --allow-any-snapshot-date", "set allow_any_snapshot_date=True"
            )
            raise ConfigError(message, where="argument snapshot_date") from None
        return given

    def _config(self) -> Config:
        dated: dict[str, Any] = {}
        given = self._given_snapshot_date()
        if given is not None:
            dated = {"snapshot_date": given, "allow_any_snapshot_date": True}
        return HssHook(self.hss_conn_id).get_config(
            out=self.out,
            projects=self.project_ids or None,
            filters=self.filters or None,
            rate=self.rate,
            concurrency=self.concurrency,
            max_quarantined=self.max_quarantined,
            **dated,
        )

    def _skip_a_past_run(self, context: Context) -> None:
        """A run standing for a day before yesterday cannot read that day: skip it."""
        if self.snapshot_date not in (None, ""):
            return  # a date was chosen for the snapshot: it is checked like any other
        day = _run_day(context)
        today = datetime.now(UTC).date()
        if day is None or day >= today - timedelta(days=1):
            return
        raise AirflowSkipException(
            f"HSS image sync skipped: this run stands for {day} (its logical date), but the "
            f"HSS API has no history: it can only read today's inventory ({today}, UTC), and "
            f"writing that as the snapshot of {day} would fake that day. Runs for today or "
            "yesterday write a snapshot; backfills, catch-up runs and cleared old runs are "
            "skipped. To label today's inventory with that day anyway, pass "
            "snapshot_date='{{ ds }}' and allow_any_snapshot_date=True."
        )

    def _sync(self, config: Config, redactor: Redactor) -> RunReport:
        """``run_async(config)`` on an event loop of its own, which ``on_kill`` can stop."""
        # imported here, not with the module: a DAG file that imports the operator is parsed
        # again and again, and the pipeline brings aiohttp and msgspec (~0.3 s each time)
        from .pipeline import run_async

        async def main() -> RunReport:
            task = asyncio.current_task()
            assert task is not None
            self._running = (asyncio.get_running_loop(), task, threading.get_ident())
            if self._killed.is_set():  # killed while starting
                task.cancel()
            try:
                return await run_async(config, redactor=redactor)
            finally:
                self._running = None

        self._killed.clear()
        self._finished.clear()
        try:
            return asyncio.run(main())
        except asyncio.CancelledError:
            if not self._killed.is_set():
                raise
            raise AirflowException(
                "HSS image sync stopped (on_kill): unfinished projects were not published and "
                "their staged files were removed"
            ) from None
        finally:
            self._finished.set()

    def on_kill(self) -> None:
        """Stop a running sync cleanly, as SIGTERM stops the CLI: unfinished projects are
        not published, their staging is removed, a publish under way completes.

        Airflow calls this from the task's SIGTERM handler, on the thread running the sync:
        the run is then cancelled as soon as the handler returns. Called from another thread,
        it waits (up to ``ON_KILL_WAIT_S``) until the run has stopped and cleaned up.
        """
        self._killed.set()
        running = self._running
        if running is None:
            return
        loop, task, thread = running
        with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
            loop.call_soon_threadsafe(task.cancel)
        if threading.get_ident() != thread:
            self._finished.wait(ON_KILL_WAIT_S)

    def execute(self, context: Context) -> dict[str, Any]:
        self._lineage = None
        self._skip_a_past_run(context)
        redactor = Redactor()
        try:
            config = self._config()
            redactor.add(*config.auth.secrets())
            self._lineage = SyncFacts.of(config)
            report = self._sync(config, redactor)
        except ConnectorError as error:
            message = redactor(f"{type(error).__name__}: {error}")
            if error.permanent:
                raise AirflowFailException(message) from error
            raise AirflowException(message) from error
        data = report.to_dict()  # every string in it redacted
        self._lineage = self._lineage.ended(data)
        self.log.info("%s", report.summary())
        if report.status == "success":
            return data
        context["ti"].xcom_push(key="report", value=data)
        failed = [
            p for p in data["projects"].values() if p["status"] not in ("published", "superseded")
        ]
        lines = [f"{p['error_type']}: {p['error']}" for p in failed]
        message = (
            f"HSS image sync {report.status}: {len(failed)} of {len(report.projects)} "
            f"project(s) failed (run {report.run_id})\n" + "\n".join(lines)
        )
        if all(is_permanent(p["error_type"]) for p in failed):
            raise AirflowFailException(message)
        raise AirflowException(message)

    def get_openlineage_facets_on_start(self) -> Any:
        """The lake this task writes, with its schema: what is known when it starts (the
        projects and their endpoint come from the connection, read by the run itself)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        if not isinstance(self.out, str) or not self.out.strip():
            return OperatorLineage()
        return OperatorLineage(outputs=[lake(self.out.strip())])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The run's lineage, for Airflow's OpenLineage provider (the ``openlineage`` extra).

        Inputs: the API resource of each project read (namespace the endpoint); output: the
        lake, with its schema and what this run published (rows, bytes, files); per project
        the records read and the data-quality checks (quarantined records, the quarantine
        limit, whether it was published). The provider calls this after the task succeeded
        and, as there is no ``..._on_failure``, after it failed. ``connector.lineage`` builds
        it; the provider's classes are imported only here, when the provider calls.
        """
        from airflow.providers.openlineage.extractors import OperatorLineage

        if self._lineage is None:  # skipped, or stopped before its configuration was read
            return OperatorLineage()
        inputs, outputs = datasets(self._lineage)
        return OperatorLineage(inputs=inputs, outputs=outputs)


def lake_asset(out: str) -> Any:
    """The lake at ``out`` as an Airflow ``Asset`` (``file://`` for a local folder).

    The operator declares it as its outlet, so a DAG scheduled on it
    (``schedule=[lake_asset("/data/lake/hss_images")]``) runs after each sync.
    """
    uri = out.rstrip("/") or out
    if "://" not in uri:
        uri = Path(uri).expanduser().resolve().as_uri()
    return Asset(uri=uri, name=f"hss_images:{uri}", group="hss_images")


def _run_day(context: Any) -> date | None:
    """The UTC day a run stands for: its logical date, else the day it was due to run."""
    moment = context.get("logical_date")
    if moment is None:
        moment = getattr(context.get("dag_run"), "run_after", None)
    if isinstance(moment, datetime):
        return (moment.astimezone(UTC) if moment.tzinfo else moment).date()
    if isinstance(moment, date):
        return moment
    return None
