"""What a run did: counts, drift, files, errors. JSON for machines, a summary for people."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

__all__ = ["ProjectReport", "RunReport"]


@dataclass(slots=True)
class ProjectReport:
    project_id: str
    status: Literal["published", "superseded", "failed"] = "failed"
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
    slices: int = 1
    drift_detected: bool = False
    drift: list[str] = field(default_factory=list)
    retry_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_fields: dict[str, int] = field(default_factory=dict)
    extra_fields: dict[str, int] = field(default_factory=dict)
    unknown_enum_values: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    superseded_by: str | None = None
    """status "superseded": the newer run whose snapshot was in place and kept."""
    error: str | None = None
    error_type: str | None = None
    exit_code: int = 0
    duration_s: float = 0.0


@dataclass(slots=True)
class RunReport:
    run_id: str
    snapshot_date: str
    endpoint: str
    started_at: str
    status: Literal["success", "partial", "failed"] = "failed"
    exit_code: int = 0
    duration_s: float = 0.0
    rate_configured: float = 0.0
    rate_settled: float = 0.0
    projects: dict[str, ProjectReport] = field(default_factory=dict)

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
        data = asdict(self)
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
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def summary(self) -> str:
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
        ]
        for project in self.projects.values():
            line = f"  {project.project_id}: {project.status}, {project.records_written} records"
            if project.drift_detected:
                line += f", drift repaired ({project.pages_reread} pages re-read)"
            if project.extra_fields:
                line += f", unknown fields kept: {', '.join(sorted(project.extra_fields))}"
            if project.superseded_by:
                line += f" (not published: run {project.superseded_by}, started later, is in place)"
            if project.error:
                line += f"\n    {project.error_type}: {project.error}"
            lines.append(line)
        return "\n".join(lines)
