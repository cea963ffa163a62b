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
from dataclasses import replace
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
from connector.job.admission import Admission, Admitted, discovering_places
from connector.job.logs import PROJECT, error_fields, run_context
from connector.job.memory import Budget, Footprint, estimate, format_size, machine_budget
from connector.job.progress import Counts, Progress
from connector.job.report import ProjectReport, RunReport, check_report_path, write_report
from connector.lake.writer import ROW_GROUP_ROWS, Output, ProjectWriter, Staged
from connector.redaction import RedactingFilter, Redactor
from connector.settings.config import Config, Target, is_loopback
from connector.settings.names import name, name_and_key, setting
from connector.shape.batches import BatchBuilder
from connector.shape.records import RecordChecker
from connector.shape.schema import file_schema, load_spec
from connector.shape.sink import ProjectSink
from connector.source.auth import authenticator_for
from connector.source.client import HssClient, Page, PageSource
from connector.source.decoding import PageDecoder
from connector.source.fetcher import CrawlStats, PageFetcher, ProjectCrawler
from connector.source.limiter import RateLimiter
from connector.source.transport import Transport, open_transport

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
            async with contextlib.AsyncExitStack() as stack:
                transport = None
                if config.all_projects:  # first list the projects, on the sync's transport
                    transport = await stack.enter_async_context(open_transport(config.fetch))
                    config = await _discover(config, transport, report, redactor, sleep)
                return await _run_projects(config, report, source, sleep, redactor, transport)
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


async def _discover(
    config: Config,
    transport: Transport,
    report: RunReport,
    redactor: Redactor,
    sleep: Callable[[float], Awaitable[None]],
) -> Config:
    """``all_projects``: the config as if IAM's projects of the region had been given."""
    from connector.source.discovery import (
        discover_projects,  # only a run over all projects lists them
    )

    report.projects_discovered = True
    found = await discover_projects(config, transport, redactor=redactor, sleep=sleep)
    report.discovery = found.to_dict()
    return replace(config, projects=found.project_ids, all_projects=False)


def _stopped(report: RunReport, error: BaseException) -> None:
    """Record in the report why the run as a whole stopped."""
    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        report.status, report.exit_code = "interrupted", 130
        report.error_type = "Interrupted"
        report.error = (
            "the run was stopped (SIGINT/SIGTERM); unfinished projects were not published"
        )
        for project in report.projects.values():
            if project.status not in ("published", "superseded"):
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


async def _run_projects(
    config: Config,
    report: RunReport,
    source: PageSource | None,
    sleep: Callable[[float], Awaitable[None]],
    redactor: Redactor,
    transport: Transport | None = None,
) -> RunReport:
    started = time.monotonic()
    try:
        output = await asyncio.to_thread(
            Output, config.out, config.run_id, config.s3_endpoint, query=config.filters.params()
        )
    except OutputError as error:
        raise _at_start(error) from error
    await asyncio.to_thread(file_schema)  # read the schema file once, off the event loop
    stats = {t.project_id: CrawlStats() for t in config.targets}
    progress = Progress(lambda: progress_counts(stats), config.progress)
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
    limiters: dict[tuple[str, str], RateLimiter] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            if source is None and transport is None:
                transport = await stack.enter_async_context(open_transport(config.fetch))
            fetchers: dict[str, PageFetcher] = {}
            decoder = PageDecoder(load_spec())
            for endpoint in sorted({t.endpoint for t in config.targets}):
                if source is None:
                    assert transport is not None
                    auth = authenticator_for(config.auth, transport, endpoint)
                    endpoint_source: PageSource = HssClient(
                        transport,
                        endpoint,
                        auth,
                        request_timeout_s=config.fetch.request_timeout_s,
                        redactor=redactor,
                        decoder=decoder,
                    )
                    identity = auth.identity
                else:
                    endpoint_source, identity = source, "test"
                # the gateway throttles per user: one bucket and one cap on requests in
                # flight per endpoint and credential, shared by all its projects
                limiter = limiters.setdefault(
                    (endpoint, identity),
                    RateLimiter(
                        config.fetch.rate,
                        config.fetch.burst,
                        max_in_flight=config.fetch.concurrency,
                        sleep=sleep,
                    ),
                )
                fetchers[endpoint] = PageFetcher(
                    endpoint_source, limiter, config.fetch.retry, sleep=sleep
                )
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
                            async with admission.project() as admitted:
                                await _sync_project(
                                    config,
                                    target.project_id,
                                    config.filters_of(target).params(),
                                    fetchers[target.endpoint],
                                    output,
                                    stats[target.project_id],
                                    report,
                                    _Reading(admitted, footprint, stats[target.project_id]),
                                )

                        group.create_task(one())
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
                progress.finish()
    finally:
        report.projects_reading_max = admission.peak_reading
        await asyncio.to_thread(output.close)
    report.duration_s = round(time.monotonic() - started, 3)
    report.rate_settled = min((lim.rate for lim in limiters.values()), default=config.fetch.rate)
    report.burst_settled = min((lim.burst for lim in limiters.values()), default=config.fetch.burst)
    report.at_cap_s = round(max((lim.at_cap_s for lim in limiters.values()), default=0.0), 3)
    for (endpoint, _), limiter in limiters.items():
        if advice := limiter.concurrency_advice(report.duration_s):
            log.warning("%s: %s", endpoint, advice)
    failed = [p for p in report.projects.values() if p.status == "failed"]
    if not failed:
        report.status, report.exit_code = "success", 0
    elif len(failed) < len(report.projects):
        report.status, report.exit_code = "partial", 4
    else:
        codes = (p.exit_code for p in failed)
        report.status, report.exit_code = "failed", worst_exit_code(codes)
    return report


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


async def _sync_project(
    config: Config,
    project_id: str,
    params: list[tuple[str, Any]],
    fetcher: PageFetcher,
    output: Output,
    stats: CrawlStats,
    report: RunReport,
    admitted: _Reading | None = None,
) -> None:
    """Fetch, stage and publish one project; record a failure instead of raising it."""
    started = time.monotonic()
    result = report.projects[project_id]
    spec = load_spec()
    schema = file_schema()
    writer = output.project(project_id, config.snapshot_date, schema, query=params)
    sink = ProjectSink(
        writer,
        BatchBuilder(spec, schema),
        RecordChecker(spec),
        project_id=project_id,
        run_id=config.run_id,
    )
    queue: asyncio.Queue[tuple[Page, int, list[Any]] | None] = asyncio.Queue(
        maxsize=2 * config.fetch.concurrency
    )

    async def emit(page: Page, start: int, records: list[Any]) -> None:
        stats.records_read += len(records)
        await queue.put((page, start, records))

    crawler = ProjectCrawler(
        fetcher,
        config.fetch,
        spec.natural_key,
        project_id=project_id,
        params=params,
        emit=emit,
        stats=stats,
        after_first=admitted.start if admitted is not None else None,
    )
    stage = "reading the project"
    try:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_drain(queue, sink))
                await crawler.run()
                if admitted is not None:
                    admitted.done()
                await queue.put(None)
        except BaseExceptionGroup as group_error:
            raise _leaf(group_error) from None
        fetched = sink.counts.records_in
        repeated = stats.drift_detected or stats.identical_rows
        dedupe_by = spec.natural_key if repeated else None
        stage = "finishing the staged Parquet file"
        staged = await asyncio.to_thread(writer.finish, dedupe_by)
        result.records_quarantined = staged.quarantined
        if not config.max_quarantined.allows(staged.quarantined, staged.rows + staged.quarantined):
            raise QuarantineLimitError(
                f"project {project_id}: {staged.quarantined} of "
                f"{staged.rows + staged.quarantined} records failed validation, more than "
                f"{setting('max_quarantined')} {config.max_quarantined}; nothing was published (the "
                "reasons per field are in the run report)"
            )
        _check_accounting(project_id, crawler.proven_records, fetched, staged, stats)
        stage = "publishing"
        published = await _uninterruptible(asyncio.to_thread(writer.publish))
        result.files = [_as_uri(config.out, output.root, path) for path in published.files]
        result.status = "superseded" if published.superseded_by else "published"
        result.superseded_by = published.superseded_by
        result.records_written = staged.rows
        result.duplicates_removed = staged.duplicates_removed
        if not published.superseded_by:
            log.info(
                "project %s: %d records published to %s",
                project_id,
                staged.rows,
                ", ".join(result.files),
                extra={"records": staged.rows},
            )
    except ConnectorError as error:
        await _abort(writer)
        result.error = str(error)
        result.error_type = type(error).__name__
        result.exit_code = error.exit_code
        log.error(
            "project %s failed: %s: %s",
            project_id,
            type(error).__name__,
            error,
            extra=error_fields(error),
        )
    except Exception as error:  # whatever it is, it is this project's alone
        await _abort(writer)
        result.error = _unexpected(error, stage)
        result.error_type = type(error).__name__
        result.exit_code = 1
        log.error(
            "project %s failed: %s: %s",
            project_id,
            result.error_type,
            result.error,
            extra=error_fields(error),
        )
        log.debug("project %s: the traceback", project_id, exc_info=error)
    except BaseException:
        await _abort(writer)
        raise
    finally:
        counts = sink.counts
        result.total_num = crawler.total_num
        if admitted is not None and admitted.admitted.footprint is not None:
            result.memory_estimate = admitted.admitted.footprint.total
        # what was read: on failure, pages still queued for conversion count as read too
        result.records_fetched = max(counts.records_in, stats.records_read)
        if result.status not in ("published", "superseded"):
            result.records_quarantined = counts.quarantined
        result.requests = stats.requests
        result.retries = stats.retries
        result.throttled = stats.throttled
        result.pages = stats.pages
        result.pages_reread = stats.pages_reread
        result.end_probes = stats.probes
        result.repairs = dict(stats.repairs)
        result.page_size = stats.page_size or config.fetch.page_size
        result.slices = stats.slices
        mismatch = stats.total_num_mismatch
        result.total_num_mismatch = mismatch.as_dict() if mismatch is not None else None
        result.drift_detected = stats.drift_detected
        result.drift = list(stats.drift_reasons)
        result.retry_reasons = dict(stats.retry_reasons)
        result.quarantine_fields = dict(counts.quarantine_reasons)
        result.extra_fields = dict(counts.extra_fields)
        enum_values: dict[str, dict[str, int]] = {}
        for (name, value), count in counts.unknown_enum_values.items():
            enum_values.setdefault(name, {})[value] = count
        result.unknown_enum_values = enum_values
        result.duration_s = round(time.monotonic() - started, 3)


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


async def _drain(
    queue: asyncio.Queue[tuple[Page, int, list[Any]] | None], sink: ProjectSink
) -> None:
    """Convert and stage pages a few thousand records at a time, on one thread of its own.

    One dedicated thread (rather than the default pool) keeps the allocator's per-thread
    caches to one per project: about 60 MB less at peak. A conversion that has started is
    awaited even when the run is cancelled, so the writer is never closed under it.
    """
    loop = asyncio.get_running_loop()
    converter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hss-convert")
    pending: list[tuple[Page, int, list[Any]]] = []
    size = 0
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            pending.append(item)
            size += len(item[2])
            if size >= CHUNK_RECORDS:
                await _uninterruptible(loop.run_in_executor(converter, _convert, sink, pending))
                pending, size = [], 0
        if pending:
            await _uninterruptible(loop.run_in_executor(converter, _convert, sink, pending))
    finally:
        converter.shutdown(wait=False)


def _convert(sink: ProjectSink, pending: list[tuple[Page, int, list[Any]]]) -> None:
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
