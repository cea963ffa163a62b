"""Request statistics for tests and benchmarks: counters and a bounded request log.

List requests are counted per project (``requests``, ``statuses``, ``error_codes``: the
gateway's or HSS's ``error_code`` of refused requests, ``faults``, ``behaviours``: the
gateway behaviours that altered a page, ``records_served``). The simulated IAM's logins are
counted apart (``iam_requests``, ``tokens_issued``, ``tokens_by_project`` and
``domain_tokens``), and so are its project listings (``project_listings``: answered,
``project_listings_refused``): they are not list requests.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

__all__ = ["ProjectStats", "RequestLogEntry", "SimulatorStats"]

NO_RESPONSE = 0
"""The ``status`` logged when the connection was reset instead of answered."""


@dataclass(frozen=True, slots=True)
class RequestLogEntry:
    """One list request.

    ``served`` is how many records the response's ``data_list`` held (0 for a body without
    ``data_list``); ``None`` when the response carried no readable page (an error, a reset,
    a truncated or invalid body, an HTML page). ``total_num`` is the total it reported
    (``None`` likewise). ``behaviour`` names the gateway behaviour that altered the page:
    ``"short"``, ``"empty"``, ``"missing_data_list"``, ``"swap"``, ``"cut"`` or
    ``"short_at_total"`` (``None``: served as the list has it, up to the page cap and
    ``serve_until``).
    """

    project_id: str
    offset: int | None
    limit: int | None
    status: int
    fault: str | None
    request_id: str
    error_code: str | None = None
    served: int | None = None
    behaviour: str | None = None
    total_num: int | None = None


@dataclass(slots=True)
class ProjectStats:
    requests: int = 0
    throttled: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    behaviours: Counter[str] = field(default_factory=Counter)
    records_served: int = 0

    def record(self, entry: RequestLogEntry) -> None:
        self.requests += 1
        self.statuses[entry.status] += 1
        if entry.error_code is not None:
            self.error_codes[entry.error_code] += 1
        if entry.status == 429:
            self.throttled += 1
        if entry.fault is not None:
            self.faults[entry.fault] += 1
        if entry.behaviour is not None:
            self.behaviours[entry.behaviour] += 1
        if entry.served is not None:
            self.records_served += entry.served


class SimulatorStats:
    """Totals, per-project counters and the log of (project, offset, limit, status, ...).

    Updated by the server's event loop only; read it from elsewhere when no request is in
    flight. The log keeps the latest ``log_limit`` entries.
    """

    def __init__(self, log_limit: int = 1_000_000) -> None:
        self.total = ProjectStats()
        self.projects: dict[str, ProjectStats] = {}
        self.log: deque[RequestLogEntry] = deque(maxlen=log_limit)
        self.iam_requests = 0
        self.tokens_by_project: Counter[str] = Counter()
        self.domain_tokens = 0
        self.project_listings = 0
        self.project_listings_refused = 0

    def record(self, entry: RequestLogEntry) -> None:
        self.total.record(entry)
        stats = self.projects.get(entry.project_id)
        if stats is None:
            stats = self.projects[entry.project_id] = ProjectStats()
        stats.record(entry)
        self.log.append(entry)

    def record_login(self, project_id: str | None, *, domain_scoped: bool = False) -> None:
        """One ``POST /v3/auth/tokens``: a token for ``project_id``, a domain-scoped token
        (``domain_scoped``), or refused (``None``)."""
        self.iam_requests += 1
        if domain_scoped:
            self.domain_tokens += 1
        elif project_id is not None:
            self.tokens_by_project[project_id] += 1

    def record_listing(self, *, refused: bool) -> None:
        """One ``GET /v3/auth/projects``."""
        if refused:
            self.project_listings_refused += 1
        else:
            self.project_listings += 1

    @property
    def tokens_issued(self) -> int:
        return self.tokens_by_project.total() + self.domain_tokens

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

    @property
    def error_codes(self) -> Counter[str]:
        return self.total.error_codes

    @property
    def behaviours(self) -> Counter[str]:
        return self.total.behaviours

    @property
    def records_served(self) -> int:
        return self.total.records_served

    def reset(self) -> None:
        self.total = ProjectStats()
        self.projects.clear()
        self.log.clear()
        self.iam_requests = 0
        self.tokens_by_project.clear()
        self.domain_tokens = 0
        self.project_listings = 0
        self.project_listings_refused = 0
