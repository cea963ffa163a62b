"""What a run did: counts, drift, files, errors. JSON for machines, a summary for people.

Every string that leaves a report (``to_dict``, ``to_json``, ``summary``) has passed the
run's ``Redactor``: an error message that quotes the server, which quoted a token, shows
``***`` instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import orjson

from connector.errors import ConfigError
from connector.job.memory import format_size
from connector.redaction import Redactor
from connector.settings.names import name
from connector.version import __version__

__all__ = ["ProjectReport", "RunReport", "check_report_path", "write_report"]


@dataclass(slots=True)
class ProjectReport:
    """One project's outcome in the run report."""

    project_id: str
    status: Literal["published", "superseded", "skipped", "failed", "interrupted"] = "failed"
    total_num: int | None = None
    records_fetched: int = 0
    records_written: int = 0
    records_quarantined: int = 0
    duplicates_removed: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    pages: int = 0
    pages_reread: int = 0
    end_probes: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    """Why pages were read again: gap, shift, moved, short, with how often."""
    page_size: int = 0
    """The page size used: smaller than asked when the server caps pages."""
    slices: int = 1
    total_num_mismatch: dict[str, int] | None = None
    """Where the list provably ended (``records``) when ``total_num`` said otherwise: what
    ``--total-num-tolerance`` accepted, or what failed the project; ``answers``: the reads
    past the end that said so."""
    drift_detected: bool = False
    drift: list[str] = field(default_factory=list)
    retry_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_fields: dict[str, int] = field(default_factory=dict)
    extra_fields: dict[str, int] = field(default_factory=dict)
    unknown_enum_values: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    superseded_by: str | None = None
    """status "superseded": the newer run whose snapshot was in place and kept."""
    skipped: str | None = None
    """status "skipped" (``skip_published``): why nothing was requested, e.g. ``already
    published for 2026-12-08 by run R with the same query``."""
    published_by: str | None = None
    """status "skipped": the run whose snapshot is in place, untouched (its ``files``)."""
    records_in_place: int = 0
    """status "skipped": the rows of the snapshot in place."""
    error: str | None = None
    error_type: str | None = None
    exit_code: int = 0
    memory_estimate: int | None = None
    """Bytes the project was estimated to hold while it read (``connector.job.memory``); what
    it was admitted with against the run's ``memory_budget``."""
    query: dict[str, Any] | None = None
    """The project's own query parameters (enterprise project, filters), when they are not
    the run's ``query``."""
    duration_s: float = 0.0

    def record(self, counts: dict[str, Any]) -> None:
        """Counts by their report names, from the object that owns them (the crawl's
        ``CrawlStats.for_report``, the sink's ``SinkCounts.for_report``)."""
        for field_name, value in counts.items():
            setattr(self, field_name, value)  # an unknown name fails: the fields have slots


@dataclass(slots=True)
class RunReport:
    """What a run did: ``summary`` for people, ``to_json`` for the report file and Airflow."""

    run_id: str
    snapshot_date: str
    endpoint: str
    started_at: str
    finished_at: str | None = None
    status: Literal["success", "partial", "failed", "interrupted"] = "failed"
    exit_code: int = 0
    duration_s: float = 0.0
    rate_configured: float = 0.0
    rate_settled: float = 0.0
    burst_configured: float = 0.0
    burst_settled: float = 0.0
    """The limiter's burst at the end: below ``burst_configured`` when 429s taught it."""
    at_cap_s: float = 0.0
    """Seconds with as many requests in flight as ``--concurrency`` allows: near the run's
    duration, the cap and not ``--rate`` set the pace (the log then names a value that
    reaches the rate)."""
    memory_budget: int = 0
    """Bytes the estimates of the projects reading at once may add up to."""
    memory_budget_origin: str = ""
    """Where ``memory_budget`` came from: ``memory_limit`` (given), or ``a quarter of the
    cgroup limit 6 GiB`` (derived from the machine)."""
    projects_reading_max: int = 0
    """The largest number of projects that read at once."""
    snapshot_date_origin: str = "default"
    """``default`` (the UTC date the inventory was read on), ``given`` (today or yesterday,
    chosen) or ``opt-in`` (another date, with ``allow_any_snapshot_date``)."""
    query: dict[str, Any] = field(default_factory=dict)
    """The query parameters sent for every project (filters, enterprise project)."""
    projects_discovered: bool = False
    """The projects were listed through IAM (``--all-projects``), not given."""
    discovery: dict[str, Any] | None = None
    """With ``projects_discovered``: ``region``, ``iam_endpoint``, ``projects`` read
    (``id``, ``name``), ``skipped`` (``id``, ``name``, ``reason``: ``disabled`` or
    ``another region``) and IAM's ``request_id``."""
    table: dict[str, Any] | None = None
    """With ``--format iceberg``: ``format``, ``catalog`` and its properties (no secrets),
    ``identifier``, ``location``, the ``snapshot_id`` the run committed (``None``: nothing)."""
    connector_version: str = __version__
    error: str | None = None
    """Why the run as a whole failed or stopped (start-up errors, interruption)."""
    error_type: str | None = None
    projects: dict[str, ProjectReport] = field(default_factory=dict)
    redactor: Redactor = field(default_factory=Redactor, repr=False, compare=False)

    def _sum(self, name: str) -> int:
        return sum(int(getattr(p, name)) for p in self.projects.values())

    @property
    def records_written(self) -> int:
        return self._sum("records_written")

    @property
    def records_quarantined(self) -> int:
        return self._sum("records_quarantined")

    @property
    def drift_detected(self) -> bool:
        return any(p.drift_detected for p in self.projects.values())

    @property
    def schema_drift(self) -> bool:
        return any(p.extra_fields or p.unknown_enum_values for p in self.projects.values())

    @property
    def files(self) -> list[str]:
        return [f for p in self.projects.values() for f in p.files]

    def to_dict(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("projects", "redactor", "query")
        }
        data["query"] = dict(self.query)
        data["projects"] = {key: asdict(p) for key, p in self.projects.items()}
        data.update(
            records_fetched=self._sum("records_fetched"),
            records_written=self.records_written,
            records_quarantined=self.records_quarantined,
            duplicates_removed=self._sum("duplicates_removed"),
            requests=self._sum("requests"),
            retries=self._sum("retries"),
            throttled=self._sum("throttled"),
            drift_detected=self.drift_detected,
            schema_drift=self.schema_drift,
            files=self.files,
        )
        scrubbed: dict[str, Any] = self.redactor.scrub(data)
        return scrubbed

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def summary(self) -> str:
        """A few lines for a person; secrets redacted like everything else in the report."""
        return self.redactor(self._summary())

    def _summary(self) -> str:
        data = self.to_dict()
        lines = [
            f"run {self.run_id}: {self.status} in {self.duration_s:.1f}s; "
            f"{data['records_written']} records written, {data['records_quarantined']} "
            f"quarantined, {data['duplicates_removed']} duplicates removed; "
            f"{data['requests']} requests, {data['retries']} retries, "
            f"{data['throttled']} throttled"
            + (
                f"; rate settled at {self.rate_settled:g}/s"
                if self.rate_settled < self.rate_configured
                else ""
            )
            + (
                f"; burst settled at {self.burst_settled:g}"
                if self.burst_settled < self.burst_configured
                else ""
            )
        ]
        for project in self.projects.values():
            line = f"  {project.project_id}: {project.status}, {project.records_written} records"
            if project.query is not None:
                own = ", ".join(f"{k}={v}" for k, v in project.query.items())
                line += f" (its own query: {own})"
            if project.drift_detected and project.status == "published":
                line += f", proven complete after re-reading {project.pages_reread} pages"
            mismatch = project.total_num_mismatch
            if mismatch is not None and project.status in ("published", "superseded"):
                line += (
                    f", total_num said {mismatch['total_num']} for {mismatch['records']} "
                    f"records (accepted by {name('total_num_tolerance')})"
                )
            if project.extra_fields:
                kept = "kept" if project.status in ("published", "superseded") else "seen"
                line += f", unknown fields {kept}: {', '.join(sorted(project.extra_fields))}"
            if project.status == "skipped":
                line = (
                    f"  {project.project_id}: skipped, {project.records_in_place} records in "
                    f"place ({project.skipped})"
                )
            if project.superseded_by:
                line += f" (not published: run {project.superseded_by}, started later, is in place)"
            if project.error:
                line += f"\n    {project.error_type}: {project.error}"
            lines.append(line)
        if self.projects_reading_max:
            lines.append(
                f"  memory budget {format_size(self.memory_budget)} "
                f"({self.memory_budget_origin}): at most {self.projects_reading_max} "
                "project(s) read at once"
            )
        if self.projects_discovered and self.discovery is not None:
            skipped = self.discovery.get("skipped", [])
            disabled = sum(1 for s in skipped if s.get("reason") == "disabled")
            lines.append(
                f"  projects discovered through IAM in {self.discovery.get('region')}: "
                f"{len(self.discovery.get('projects', []))} read, {disabled} disabled skipped, "
                f"{len(skipped) - disabled} of other regions"
            )
        if self.error:
            lines.append(f"  {self.error_type}: {self.error}")
        return "\n".join(lines)


def check_report_path(path: str) -> None:
    """Fail before the first request when the report could not be written at the end."""
    target = Path(path).expanduser()
    folder = target.parent
    at = "report"
    if target.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name for the report", setting=at)
    if not folder.is_dir():
        raise ConfigError(
            f"the folder {str(folder)!r} does not exist; create it or choose another place "
            "for the report",
            setting=at,
        )
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{path} exists and is not writable", setting=at)
    try:  # what os.access cannot tell: read-only mounts, ACLs, quotas
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hss-report-", suffix=".probe"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write in the folder {str(folder)!r}: {exc.strerror or exc}", setting=at
        ) from None


def write_report(path: str, data: bytes) -> None:
    """Write the report whole: a reader never sees half of it (temporary file, rename)."""
    target = Path(path).expanduser()
    temporary = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_bytes(data)
        temporary.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
