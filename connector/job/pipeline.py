"""``run(config) -> RunReport``: the one way through.

    config -> client/fetcher -> records -> Arrow batches -> Parquet writer -> report

Projects run concurrently and share one rate limiter and one cap on requests in flight
per endpoint and credential (the gateway throttles per user); as many read at once as
their memory estimates fit in the run's budget (``admission``, ``memory``). Each project is staged and
published on its own: one failing project does not lose the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from connector.errors import (
    ConfigError,
    ConnectorError,
    DataLossError,
    OutputError,
    QuarantineLimitError,
    worst_exit_code,
)
from connector.job import iceberg_step
from connector.job.admission import Admission, Admitted, discovering_places
from connector.job.logs import PROJECT, error_fields, run_context
from connector.job.memory import Budget, Footprint, estimate, format_size, machine_budget
from connector.job.progress import Counts, Progress
from connector.job.report import ProjectReport, RunReport, check_report_path, write_report
from connector.lake import iceberg
from connector.lake.writer import ROW_GROUP_ROWS, Output, ProjectWriter, Staged
from connector.redaction import RedactingFilter, Redactor
from connector.settings.config import Config, Target, is_loopback
from connector.settings.names import name, name_and_key, setting
from connector.shape.batches import BatchBuilder
from connector.shape.page import PageRecords
from connector.shape.records import RecordChecker
from connector.shape.schema import file_schema, load_spec
from connector.shape.sink import ProjectSink
from connector.source.client import PageSource
from connector.source.fetcher import CrawlStats, PageFetcher, ProjectCrawler
from connector.source.readers import Readers, open_readers

__all__ = ["run", "run_async"]

T = TypeVar("T")

log = logging.getLogger("connector")

CHUNK_RECORDS = 5_000
"""Records converted to Arrow in one go: large enough to amortise, small enough for memory."""


def run(config: Config) -> RunReport:
    """Sync every project of ``config``; return the report (also on partial failure).

    Not inside a running event loop (a notebook, an async application): there, use
    ``await run_async(config)``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_async(config))
    raise ConnectorError(
        "run() cannot be called inside a running event loop (a Jupyter notebook, an async "
        "application): use 'await connector.run_async(config)' there instead"
    )


async def run_async(
    config: Config,
    *,
    source: PageSource | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    redactor: Redactor | None = None,
) -> RunReport:
    """The pipeline. ``source`` replaces the HTTP client (tests of the paging logic).

    Returns the report, also when projects failed. Raises only when the run as a whole
    cannot go on (a start-up error, an interruption, a bug); the report is then still
    complete and, with ``config.report_path``, written: whatever happens, a run that got
    past its start-up checks leaves a report (``"status": "interrupted"`` on SIGINT/SIGTERM).
    """
    redactor = redactor if redactor is not None else Redactor()
    redactor.add(*config.auth.secrets())
    redacting = RedactingFilter(redactor)
    log.addFilter(redacting)
    logging_context = contextlib.ExitStack()  # records carry the run id (logs.py)
    logging_context.enter_context(run_context(config.run_id))
    try:
        if config.report_path:  # before anything is requested or written
            await asyncio.to_thread(check_report_path, config.report_path)
        report = RunReport(
            run_id=config.run_id,
            snapshot_date=config.snapshot_date.isoformat(),
            endpoint=config.endpoint or ", ".join(sorted({t.endpoint for t in config.targets})),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            rate_configured=config.fetch.rate,
            burst_configured=config.fetch.burst,
            snapshot_date_origin=config.snapshot_date_origin,
            query=dict(config.filters.params()),
            redactor=redactor,
        )
        started = time.monotonic()
        stopped: BaseException | None = None
        try:
            config = config.at_start()
            report.snapshot_date = config.snapshot_date.isoformat()
            report.projects_discovered = config.all_projects
            async with open_readers(
                config, redactor=redactor, sleep=sleep, pages=source
            ) as readers:
                if readers.discovery is not None:
                    report.discovery = readers.discovery.to_dict()
                return await _run_projects(readers, report)
        except BaseException as error:
            stopped = error
            _stopped(report, error)
            raise
        finally:
            report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
            report.duration_s = round(time.monotonic() - started, 3)
            if config.report_path:
                await _save_report(config.report_path, report, quietly=stopped is not None)
    finally:
        log.removeFilter(redacting)
        logging_context.close()


def _stopped(report: RunReport, error: BaseException) -> None:
    """Record in the report why the run as a whole stopped."""
    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        report.status, report.exit_code = "interrupted", 130
        report.error_type = "Interrupted"
        report.error = (
            "the run was stopped (SIGINT/SIGTERM); unfinished projects were not published"
        )
        for project in report.projects.values():
            if project.status not in ("published", "superseded", "skipped"):
                project.status = "interrupted"
        return
    report.status = "failed"
    report.error_type = type(error).__name__
    if isinstance(error, ConnectorError):
        report.exit_code, report.error = error.exit_code, str(error)
    else:
        report.exit_code, report.error = 1, _unexpected(error)


async def _save_report(path: str, report: RunReport, *, quietly: bool) -> None:
    """Write the report, even while the run is being cancelled. A failure to write it is an
    OutputError, or only logged (``quietly``) when the run already stopped for a reason
    that must not be hidden."""
    try:
        await _uninterruptible(asyncio.to_thread(write_report, path, report.to_json()))
    except OSError as exc:
        message = f"cannot write the report to {path}: {exc.strerror or exc}"
        if quietly:
            log.error("%s", message)
            return
        raise OutputError(message) from exc


def _unexpected(error: BaseException, stage: str | None = None) -> str:
    """One line for an exception that is not one of the connector's own: what, and where."""
    text = " ".join(str(error).split())
    if isinstance(error, MemoryError):
        text = text or f"out of memory; lower {name('memory_limit')} or {name('concurrency')}"
    elif isinstance(error, RecursionError):
        text = text or "data nested too deeply"
    notes = [" ".join(n.split()) for n in getattr(error, "__notes__", ())]
    where = ", ".join([*notes, *([f"while {stage}"] if stage and not notes else [])])
    return (
        f"{text or 'no message'}{f' ({where})' if where else ''}; not an error the connector "
        "expects (-v shows the traceback)"
    )


async def _run_projects(readers: Readers, report: RunReport) -> RunReport:
    """Every project of the run, each staged and published on its own; then the verdict."""
    config = readers.config
    started = time.monotonic()
    output = await _open_output(config)
    await asyncio.to_thread(file_schema)  # read the schema file once, off the event loop
    stats = {t.project_id: CrawlStats() for t in config.targets}
    places = await _places(config, report)
    _log_start(config, places.budget)
    try:
        await _sync_all(readers, output, stats, report, places)
        if output.table is not None:
            await _commit_table(output.table, report)
    finally:
        report.projects_reading_max = places.admission.peak_reading
        await asyncio.to_thread(output.close)
    report.duration_s = round(time.monotonic() - started, 3)
    _settled(report, readers, config)
    _verdict(report)
    return report


async def _open_output(config: Config) -> Output:
    try:
        output = await asyncio.to_thread(
            Output, config.out, config.run_id, config.s3_endpoint, query=config.filters.params()
        )
        if config.format == "iceberg":  # the Iceberg table is the publish target
            output.table = await asyncio.to_thread(iceberg.open_table, config, output.stamp)
        return output
    except OutputError as error:
        raise _at_start(error) from error


async def _commit_table(table: iceberg.Table, report: RunReport) -> None:
    """The run's one Iceberg commit, once every project ended; a failed commit fails the
    projects it held (their previous data stays)."""
    try:
        await _uninterruptible(asyncio.to_thread(table.commit))
    except ConnectorError as error:
        iceberg_step.failed(table, report, error, str(error), error.exit_code)
    except Exception as error:
        iceberg_step.failed(table, report, error, _unexpected(error, "committing"), 1)
    finally:  # also when the run was stopped during the commit, which was finished first
        if table.committed is not None:
            iceberg_step.committed(table, table.committed, report)
        report.table = table.describe()


@dataclass(frozen=True, slots=True)
class _Places:
    """How many projects read at once: the memory budget, and each project's estimate."""

    budget: Budget
    admission: Admission
    footprint: Callable[[int], Footprint]


async def _places(config: Config, report: RunReport) -> _Places:
    budget = (
        Budget(config.memory_limit, "memory_limit")
        if config.memory_limit is not None
        else await asyncio.to_thread(machine_budget)  # reads /proc and /sys
    )
    report.memory_budget, report.memory_budget_origin = budget.size, budget.origin
    footprint = functools.partial(
        estimate,
        page_size=config.fetch.page_size,
        concurrency=config.fetch.concurrency,
        chunk_records=CHUNK_RECORDS,
        row_group_rows=ROW_GROUP_ROWS,
    )
    cap = config.parallel_projects
    small = footprint(config.fetch.page_size)  # a project of one page
    admission = Admission(
        budget.size, cap=cap, discovering=discovering_places(budget.size, small, cap)
    )
    return _Places(budget, admission, footprint)


def _log_start(config: Config, budget: Budget) -> None:
    cap = config.parallel_projects
    log.info(
        "run %s: %d project(s) into %s (snapshot %s, rate %g/s, concurrency %d, memory "
        "budget %s%s)",
        config.run_id,
        len(config.targets),
        config.out,
        config.snapshot_date,
        config.fetch.rate,
        config.fetch.concurrency,
        budget,
        f", at most {cap} project(s) at once" if cap is not None else "",
    )
    for endpoint in sorted({t.endpoint for t in config.targets}):
        host = urlsplit(endpoint).hostname or ""
        if endpoint.startswith("http://") and not is_loopback(host):
            log.warning(
                "%s is plain http:// to a non-loopback host: credentials and data travel "
                "unencrypted (%s)",
                endpoint,
                name("allow_insecure_http"),
            )


async def _sync_all(
    readers: Readers,
    output: Output,
    stats: dict[str, CrawlStats],
    report: RunReport,
    places: _Places,
) -> None:
    """Each project in a task of its own, admitted by the memory budget; a progress line."""
    config = readers.config
    progress = Progress(lambda: progress_counts(stats), config.progress)
    ticker = asyncio.create_task(progress.run())
    try:
        async with asyncio.TaskGroup() as group:
            for target in config.targets:
                own = None if target.filters is None else target.filters.params()
                report.projects[target.project_id] = ProjectReport(
                    target.project_id, query=None if own is None else dict(own)
                )

                async def one(target: Target = target) -> None:
                    PROJECT.set(target.project_id)  # this task's log records
                    params = config.filters_of(target).params()
                    result = report.projects[target.project_id]
                    if config.skip_published and await _in_place(output, config, params, result):
                        return
                    async with places.admission.project() as admitted:
                        project = _ProjectSync(
                            config,
                            target.project_id,
                            params,
                            stats[target.project_id],
                            result,
                        )
                        reading = _Reading(admitted, places.footprint, stats[target.project_id])
                        await project.run(readers.fetcher(target.endpoint), output, reading)

                group.create_task(one())
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        progress.finish()


async def _in_place(
    output: Output, config: Config, params: list[tuple[str, Any]], result: ProjectReport
) -> bool:
    """``skip_published``: is this project's partition for the day already published by a
    run of its query? Then it is reported skipped, with that snapshot, and not read."""
    project_id = result.project_id
    try:
        found = await asyncio.to_thread(
            output.in_place, project_id, config.snapshot_date, query=params
        )
    except Exception as error:  # one more request rather than one more assumption
        log.warning(
            "project %s: cannot tell whether it is published (%s: %s): reading it",
            project_id,
            type(error).__name__,
            error,
        )
        return False
    if found is None:
        return False
    result.status = "skipped"
    result.skipped = (
        f"already published for {config.snapshot_date} by run {found.run_id} with the same "
        f"query ({name('skip_published')})"
    )
    result.published_by = found.run_id
    result.records_in_place = found.rows
    result.files = [_as_uri(config.out, output.root, path) for path in found.files]
    log.info("project %s: skipped: %s", project_id, result.skipped)
    return True


def _settled(report: RunReport, readers: Readers, config: Config) -> None:
    """Where the limiters ended, and which cap in flight would have reached the rate."""
    limiters = readers.limiters()
    report.rate_settled = min((lim.rate for lim in limiters.values()), default=config.fetch.rate)
    report.burst_settled = min((lim.burst for lim in limiters.values()), default=config.fetch.burst)
    report.at_cap_s = round(max((lim.at_cap_s for lim in limiters.values()), default=0.0), 3)
    for endpoint, limiter in limiters.items():
        if advice := limiter.concurrency_advice(report.duration_s):
            log.warning("%s: %s", endpoint, advice)


def _verdict(report: RunReport) -> None:
    """success (0), partial (4), or failed with the worst of the projects' exit codes."""
    failed = [p for p in report.projects.values() if p.status == "failed"]
    if not failed:
        report.status, report.exit_code = "success", 0
    elif len(failed) < len(report.projects):
        report.status, report.exit_code = "partial", 4
    else:
        codes = (p.exit_code for p in failed)
        report.status, report.exit_code = "failed", worst_exit_code(codes)


_UNUSABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST})
"""Why an output cannot be used at all (read-only, not ours, not a folder), as opposed to
an I/O failure of a usable one (a full disk)."""


def _at_start(error: OutputError) -> ConnectorError:
    """An output that cannot be used, found before any request, is a configuration error
    (a missing bucket, an unknown scheme, a read-only or forbidden folder: exit 2, as
    ``check`` says of it); an I/O failure of a usable output stays one."""
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.errno not in _UNUSABLE:
        return error
    return ConfigError(f"{error}; nothing was requested", setting="out")


def progress_counts(stats: dict[str, CrawlStats]) -> Counts:
    """The progress line's numbers, from the counters the report is built from."""
    values = stats.values()
    started = [s.total_num for s in values if s.total_num is not None]
    return Counts(
        records=sum(s.records_read for s in values),
        total=sum(started),
        projects_started=len(started),
        projects=len(stats),
        pages=sum(s.pages for s in values),
        requests=sum(s.requests for s in values),
        throttled=sum(s.throttled for s in values),
    )


class _Reading:
    """A project's admission as ``_sync_project`` uses it: its estimate from its first
    page's ``total_num``, the wait for room in the budget, and one warning when it is
    bigger than the whole budget."""

    def __init__(
        self, admitted: Admitted, footprint: Callable[[int], Footprint], stats: CrawlStats
    ) -> None:
        self.admitted = admitted
        self.footprint = footprint
        self.stats = stats

    async def start(self) -> None:
        """The first page is in: wait for room for the project's estimate."""
        need = self.footprint(self.stats.total_num or 0)
        await self.admitted.read_on(need)
        if self.admitted.oversized:
            log.warning(
                "this project's estimated %s (%d records) exceed the memory budget %s: it "
                "reads alone; %s raises the budget",
                format_size(need.total),
                self.stats.total_num or 0,
                format_size(self.admitted.budget),
                name_and_key("memory_limit"),
            )

    def done(self) -> None:
        """Every page is in: give back the reading place."""
        self.admitted.read_done()


class _ProjectSync:
    """One project: fetch, stage, check, publish; a failure is recorded, never raised.

    Its steps, in order: ``_read`` (the crawl, converting pages on a thread as they come),
    ``_stage`` (the staged file finished, the quarantine limit and the accounting checked),
    ``_publish``; then the report takes the counts from their owners (``_record``).
    """

    def __init__(
        self,
        config: Config,
        project_id: str,
        params: list[tuple[str, Any]],
        stats: CrawlStats,
        result: ProjectReport,
    ) -> None:
        self.config = config
        self.project_id = project_id
        self.params = params
        self.stats = stats
        self.result = result
        self.spec = load_spec()
        self.stage = "reading the project"

    async def run(self, fetcher: PageFetcher, output: Output, reading: _Reading | None) -> None:
        started = time.monotonic()
        schema = file_schema()
        writer = output.project(
            self.project_id, self.config.snapshot_date, schema, query=self.params
        )
        sink = ProjectSink(
            writer,
            BatchBuilder(self.spec, schema),
            RecordChecker(self.spec),
            project_id=self.project_id,
            run_id=self.config.run_id,
        )
        try:
            proven = await self._read(fetcher, sink, reading)
            staged = await self._stage(writer, sink, proven)
            await self._publish(writer, output, staged)
        except ConnectorError as error:
            await _abort(writer)
            self._failed(error, str(error), error.exit_code)
        except Exception as error:  # whatever it is, it is this project's alone
            await _abort(writer)
            self._failed(error, _unexpected(error, self.stage), 1)
            log.debug("project %s: the traceback", self.project_id, exc_info=error)
        except BaseException:
            await _abort(writer)
            raise
        finally:
            self._record(sink, reading)
            self.result.duration_s = round(time.monotonic() - started, 3)

    async def _read(self, fetcher: PageFetcher, sink: ProjectSink, reading: _Reading | None) -> int:
        """Crawl the project into the sink; the number of distinct records it proved."""
        queue: asyncio.Queue[PageRecords | None] = asyncio.Queue(
            maxsize=2 * self.config.fetch.concurrency
        )

        async def emit(item: PageRecords) -> None:
            self.stats.records_read += len(item.records)
            await queue.put(item)

        crawler = ProjectCrawler(
            fetcher,
            self.config.fetch,
            self.spec.natural_key,
            project_id=self.project_id,
            params=self.params,
            emit=emit,
            stats=self.stats,
            after_first=reading.start if reading is not None else None,
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_drain(queue, sink))
                await crawler.run()
                if reading is not None:
                    reading.done()
                await queue.put(None)
        except BaseExceptionGroup as group_error:
            raise _leaf(group_error) from None
        return crawler.proven_records

    async def _stage(self, writer: ProjectWriter, sink: ProjectSink, proven: int) -> Staged:
        """Finish the staged file; refuse it over the quarantine limit or when the counts
        do not add up."""
        repeated = self.stats.drift_detected or self.stats.identical_rows
        dedupe_by = self.spec.natural_key if repeated else None
        self.stage = "finishing the staged Parquet file"
        staged = await asyncio.to_thread(writer.finish, dedupe_by)
        self.result.records_quarantined = staged.quarantined
        limit = self.config.max_quarantined
        if not limit.allows(staged.quarantined, staged.rows + staged.quarantined):
            raise QuarantineLimitError(
                f"project {self.project_id}: {staged.quarantined} of "
                f"{staged.rows + staged.quarantined} records failed validation, more than "
                f"{setting('max_quarantined')} {limit}; nothing was published (the "
                "reasons per field are in the run report)"
            )
        _check_accounting(self.project_id, proven, sink.counts.records_in, staged, self.stats)
        return staged

    async def _publish(self, writer: ProjectWriter, output: Output, staged: Staged) -> None:
        self.stage = "publishing"
        if output.table is not None:  # the table's data files now; the run's commit at the end
            await _uninterruptible(
                asyncio.to_thread(iceberg_step.stage, output.table, writer, staged, self.result)
            )
            return
        published = await _uninterruptible(asyncio.to_thread(writer.publish))
        result = self.result
        result.files = [_as_uri(self.config.out, output.root, path) for path in published.files]
        result.status = "superseded" if published.superseded_by else "published"
        result.superseded_by = published.superseded_by
        result.records_written = staged.rows
        result.duplicates_removed = staged.duplicates_removed
        if not published.superseded_by:
            log.info(
                "project %s: %d records published to %s",
                self.project_id,
                staged.rows,
                ", ".join(result.files),
                extra={"records": staged.rows},
            )

    def _failed(self, error: Exception, message: str, exit_code: int) -> None:
        self.result.error = message
        self.result.error_type = type(error).__name__
        self.result.exit_code = exit_code
        log.error(
            "project %s failed: %s: %s",
            self.project_id,
            self.result.error_type,
            message,
            extra=error_fields(error),
        )

    def _record(self, sink: ProjectSink, reading: _Reading | None) -> None:
        """The counts, from the objects that own them (also when the project failed)."""
        result = self.result
        result.record(self.stats.for_report(self.config.fetch.page_size))
        result.record(sink.counts.for_report())
        if reading is not None and reading.admitted.footprint is not None:
            result.memory_estimate = reading.admitted.footprint.total
        # what was read: on failure, pages still queued for conversion count as read too
        result.records_fetched = max(sink.counts.records_in, self.stats.records_read)
        if result.status not in ("published", "superseded"):
            result.records_quarantined = sink.counts.quarantined


async def _abort(writer: ProjectWriter) -> None:
    """Remove a failed project's staged files; a failure to do so must not hide the cause."""
    try:
        await asyncio.to_thread(writer.abort)
    except Exception as error:
        log.warning("could not remove the staged files of a failed project: %s", error)


def _as_uri(out: str, root: str, path: str) -> str:
    """A published file as the user named the output: ``s3://bucket/...`` keeps its scheme."""
    if "://" not in out or "://" in path:
        return path
    base = out.rstrip("/")
    if path.startswith(root + "/"):
        return f"{base}/{path[len(root) + 1 :]}"
    return f"{out.split('://', 1)[0]}://{path.lstrip('/')}"


def _check_accounting(
    project_id: str, proven: int, fetched: int, staged: Staged, stats: CrawlStats
) -> None:
    """fetched == written + quarantined + duplicates removed, and nothing of the records
    the crawl proved present missing from what is about to be published."""
    accounted = staged.rows + staged.quarantined + staged.duplicates_removed
    if fetched != accounted:
        raise DataLossError(
            f"accounting does not add up: fetched {fetched} != written {staged.rows} + "
            f"quarantined {staged.quarantined} + duplicates removed {staged.duplicates_removed}",
            project_id=project_id,
        )
    kept = staged.rows + staged.quarantined
    if kept < proven or (not stats.drift_detected and kept != proven):
        raise DataLossError(
            f"the crawl proved {proven} distinct records present but {kept} are about to be "
            "published (written + quarantined)",
            project_id=project_id,
        )


async def _drain(queue: asyncio.Queue[PageRecords | None], sink: ProjectSink) -> None:
    """Convert and stage pages a few thousand records at a time, on one thread of its own.

    One dedicated thread (rather than the default pool) keeps the allocator's per-thread
    caches to one per project: about 60 MB less at peak. A conversion that has started is
    awaited even when the run is cancelled, so the writer is never closed under it.
    """
    loop = asyncio.get_running_loop()
    converter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hss-convert")
    pending: list[PageRecords] = []
    size = 0
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            pending.append(item)
            size += len(item.records)
            if size >= CHUNK_RECORDS:
                await _uninterruptible(loop.run_in_executor(converter, _convert, sink, pending))
                pending, size = [], 0
        if pending:
            await _uninterruptible(loop.run_in_executor(converter, _convert, sink, pending))
    finally:
        converter.shutdown(wait=False)


def _convert(sink: ProjectSink, pending: list[PageRecords]) -> None:
    """Stage a chunk, then drop its pages here, so their records are freed off the loop."""
    try:
        sink.write(pending)
    except Exception as error:  # named in the project's error: where it happened
        error.add_note("while converting records to Arrow and staging them")
        raise
    finally:
        pending.clear()


async def _uninterruptible(work: Awaitable[T]) -> T:
    """Let work in a thread that has started finish even when the run is cancelled."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


def _leaf(error: BaseException) -> BaseException:
    """The error worth reporting from a (possibly nested) exception group."""
    while isinstance(error, BaseExceptionGroup):
        inner = error.exceptions
        preferred = [e for e in inner if isinstance(e, ConnectorError)]
        others = [e for e in inner if not isinstance(e, asyncio.CancelledError)]
        error = (preferred or others or list(inner))[0]
    return error
