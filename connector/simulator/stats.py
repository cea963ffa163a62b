"""Request statistics for tests and benchmarks: counters and a bounded request log."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

__all__ = ["ProjectStats", "RequestLogEntry", "SimulatorStats"]

NO_RESPONSE = 0
"""The ``status`` logged when the connection was reset instead of answered."""


@dataclass(frozen=True, slots=True)
class RequestLogEntry:
    project_id: str
    offset: int | None
    limit: int | None
    status: int
    fault: str | None
    request_id: str


@dataclass(slots=True)
class ProjectStats:
    requests: int = 0
    throttled: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def record(self, entry: RequestLogEntry) -> None:
        self.requests += 1
        self.statuses[entry.status] += 1
        if entry.status == 429:
            self.throttled += 1
        if entry.fault is not None:
            self.faults[entry.fault] += 1


class SimulatorStats:
    """Totals, per-project counters and the log of (project, offset, limit, status, ...).

    Updated by the server's event loop only; read it from elsewhere when no request is in
    flight. The log keeps the latest ``log_limit`` entries.
    """

    def __init__(self, log_limit: int = 1_000_000) -> None:
        self.total = ProjectStats()
        self.projects: dict[str, ProjectStats] = {}
        self.log: deque[RequestLogEntry] = deque(maxlen=log_limit)

    def record(self, entry: RequestLogEntry) -> None:
        self.total.record(entry)
        stats = self.projects.get(entry.project_id)
        if stats is None:
            stats = self.projects[entry.project_id] = ProjectStats()
        stats.record(entry)
        self.log.append(entry)

    def project(self, project_id: str) -> ProjectStats:
        """The counters of one project (all zero if it was never requested)."""
        return self.projects.get(project_id, ProjectStats())

    @property
    def requests(self) -> int:
        return self.total.requests

    @property
    def throttled(self) -> int:
        return self.total.throttled

    @property
    def faults(self) -> Counter[str]:
        return self.total.faults

    def reset(self) -> None:
        self.total = ProjectStats()
        self.projects.clear()
        self.log.clear()
