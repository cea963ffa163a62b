"""The sync operator: ``connector.run`` as an Airflow task, and the lake as its Asset."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector import Config, ConnectorError, RunReport
from connector.airflow._sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    Asset,
    BaseOperator,
)
from connector.airflow.events import LAKE_ASSET_NAME, day_extra
from connector.airflow.lineage import SyncFacts, datasets, lake
from connector.errors import is_permanent
from connector.redaction import Redactor
from connector.settings.config import check_snapshot_date
from connector.settings.keys import FILTER_KEYS, KEYS
from connector.settings.names import naming

if TYPE_CHECKING:
    from airflow.sdk import Context

from connector.airflow.hooks.hss import DEFAULT_CONN_ID, HssHook, connection_name

ON_KILL_WAIT_S = 60.0
"""How long ``on_kill`` called from another thread waits for the run to clean up."""

ARGUMENTS = (
    "out",
    "project_ids",
    "snapshot_date",
    "allow_any_snapshot_date",
    "rate",
    "concurrency",
    "max_quarantined",
    "skip_published",
)
"""The settings the operator takes as arguments of its own (the filters too, in ``filters``)."""


def _snapshot_date(value: Any) -> date:
    result: date = KEYS["snapshot_date"](value, "argument snapshot_date")
    return result


class HssImageSyncOperator(BaseOperator):  # type: ignore[misc]
    """Sync the HSS local image list of some projects into hive-partitioned Parquet.

    :param out: output folder or ``s3://bucket/prefix`` (templated)
    :param project_ids: a project id, a list of them or a comma-separated string (templated;
        default: the connection's ``project_ids``); map over ``hss_conn_id`` to run one task
        per credential (one rate budget each: the README's Airflow section)
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
        tasks running at the same time on one credential each use this rate
    :param concurrency: requests in flight (default: the connection's, else the connector's)
    :param max_quarantined: a count (``50``) or a share (``"1%"``) of invalid records
        tolerated before a project is not published (templated)
    :param skip_published: leave out every project whose partition for this snapshot date a
        run of the same query already published (no request, its files untouched). Default
        ``None``: off on the first try (unless the connection's ``skip_published`` extra is
        on), on from the second, so that a retry reads only what the failed try did not
        publish; ``False``: every try reads every project.
    :param format: ``parquet`` (default) or ``iceberg``: an Iceberg table, one commit per run
    :param catalog: with ``iceberg``, a pyiceberg catalog by name (default: the embedded
        SQLite catalog under ``out``)
    :param table: with ``iceberg``, the table's identifier (default ``hss.image_local_info``)

    Outlet: the lake's Asset, on which the task records one event when it succeeds, its
    ``extra`` saying what the day holds (``connector.airflow.events.day_extra``): the lake's
    URI (``lake_asset(out)``) for a fixed ``out``, the Asset named ``hss_images_lake``
    (``lake_asset()``) for a templated one; ``outlets=[...]`` chooses others, ``outlets=[]``
    none (a DAG that records the day's event in a task of its own, as the example DAG does).

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
        skip_published: bool | None = None,
        format: str | None = None,
        catalog: str | None = None,
        table: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs:
            fixed = isinstance(out, str) and "{{" not in out
            kwargs["outlets"] = [lake_asset(out if fixed else None)]
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
        self.skip_published = skip_published
        self.format = format
        self.catalog = catalog
        self.table = table

    def _given_snapshot_date(self) -> date | None:
        """The ``snapshot_date`` argument, checked (``None``: the date of reading)."""
        if self.snapshot_date is None or self.snapshot_date == "":
            return None
        given = _snapshot_date(self.snapshot_date)
        allow = KEYS["allow_any_snapshot_date"](
            self.allow_any_snapshot_date, "argument allow_any_snapshot_date"
        )
        check_snapshot_date(given, allow_any=allow)
        return given

    def _config(self, try_number: int) -> Config:
        overrides: dict[str, Any] = {}
        given = self._given_snapshot_date()
        if given is not None:
            overrides = {"snapshot_date": given, "allow_any_snapshot_date": True}
        skip = self.skip_published
        if skip is None and try_number > 1:
            skip = True
            self.log.info(
                "try %d: skip_published is on: projects an earlier try published for this "
                "snapshot date are left out",
                try_number,
            )
        if skip is not None:
            overrides["skip_published"] = skip
        return HssHook(self.hss_conn_id).get_config(
            out=self.out,
            projects=self.project_ids or None,
            filters=self.filters or None,
            rate=self.rate,
            concurrency=self.concurrency,
            max_quarantined=self.max_quarantined,
            **{k: v for k, v in self._table_arguments().items() if v is not None},
            **overrides,
        )

    def _table_arguments(self) -> dict[str, str | None]:
        """``format``, ``catalog`` and ``table``: given here, else the connection's."""
        return {"format": self.format, "catalog": self.catalog, "table": self.table}

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
        from connector.job.pipeline import run_async

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

    def _record_event(self, context: Context, report: dict[str, Any]) -> None:
        """What the day holds, as the ``extra`` of the event on each of the task's Assets."""
        events = context.get("outlet_events")
        if events is None:
            return
        extra = day_extra([report])
        for outlet in self.outlets or ():
            if isinstance(outlet, Asset):
                events[outlet].extra = extra

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

    def setting_name(self, key: str) -> str:
        """A setting as this task names it, in every message: its argument
        (``argument max_quarantined``, ``argument filters.has_vul``), else as its connection
        does (``connection 'hss_default' extra request_timeout``)."""
        if key in ARGUMENTS:
            return f"argument {key}"
        if key in FILTER_KEYS:
            return f"argument filters.{key}"
        return connection_name(self.hss_conn_id, key)

    def execute(self, context: Context) -> dict[str, Any]:
        with naming(self.setting_name):
            return self._execute(context)

    def _execute(self, context: Context) -> dict[str, Any]:
        self._lineage = None
        self._skip_a_past_run(context)
        redactor = Redactor()
        try:
            config = self._config(int(getattr(context.get("ti"), "try_number", 1) or 1))
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
            self._record_event(context, data)
            return data
        context["ti"].xcom_push(key="report", value=data)
        failed = [
            p
            for p in data["projects"].values()
            if p["status"] not in ("published", "superseded", "skipped")
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
        and, as there is no ``..._on_failure``, after it failed. ``connector.airflow.lineage`` builds
        it; the provider's classes are imported only here, when the provider calls.
        """
        from airflow.providers.openlineage.extractors import OperatorLineage

        if self._lineage is None:  # skipped, or stopped before its configuration was read
            return OperatorLineage()
        inputs, outputs = datasets(self._lineage)
        return OperatorLineage(inputs=inputs, outputs=outputs)


def lake_asset(out: str | None = None) -> Any:
    """The lake at ``out`` as an Airflow ``Asset`` (``file://`` for a local folder); without
    ``out``, the Asset named ``hss_images_lake`` (``LAKE_ASSET_NAME``).

    The operator declares it as its outlet, so a DAG scheduled on it
    (``schedule=[lake_asset("/data/lake/hss_images")]``, or ``schedule=[lake_asset()]`` for
    the example DAG's lake, whose path is a Variable) runs after each day's sync.
    """
    if out is None:
        return Asset(name=LAKE_ASSET_NAME)
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
