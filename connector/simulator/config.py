"""Configuration of the HSS API simulator: frozen, validated dataclasses.

Everything is off by default: no auth, no rate limit, no latency, no faults, no drift, no
gateway behaviours, no shared images.
Use :func:`dataclasses.replace` to derive variants. Secrets (tokens, secret keys, security
tokens, passwords) never appear in a ``repr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "DriftConfig",
    "FaultConfig",
    "GatewayConfig",
    "IamProject",
    "PageCut",
    "ProjectFailure",
    "SimulatorConfig",
]

_TRANSPORT_RATES = (
    "http_500_rate",
    "http_503_rate",
    "reset_rate",
    "truncate_rate",
    "invalid_json_rate",
    "html_rate",
    "slow_rate",
)
_DATA_RATES = (
    "numeric_string_rate",
    "fraction_rate",
    "iso_date_rate",
    "missing_field_rate",
    "extra_field_rate",
)


def _check_rate(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")


def _check_count(name: str, value: object, minimum: int | None = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_mapping(name: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str) or not item:
            # the value is a secret: name the key only
            raise ValueError(f"{name}: keys and values must be non-empty strings (key {key!r})")
        out[key] = item
    return out


def _check_users(value: object) -> dict[tuple[str, str], str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"iam_users must be a mapping, got {type(value).__name__}")
    out: dict[tuple[str, str], str] = {}
    for key, password in value.items():
        if not (
            isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) and k for k in key)
        ):
            raise ValueError(f"iam_users keys must be (domain, user) pairs, got {key!r}")
        if not isinstance(password, str) or not password:
            raise ValueError(f"iam_users[{key!r}]: the password must be a non-empty string")
        out[key] = password
    return out


def _frozen_set(name: str, value: object) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError(f"{name} must be a collection of strings, not a single string")
    if not isinstance(value, frozenset | set | list | tuple):
        raise TypeError(f"{name} must be a collection of strings, got {type(value).__name__}")
    return frozenset(value)


@dataclass(frozen=True, slots=True)
class IamProject:
    """A project the simulated IAM lists (``GET /v3/auth/projects``).

    ``name`` is the region (``cn-north-4``: the region's own project) or a sub-project of it
    (``cn-north-4_dev``), as the provider names them. HSS serves any project id whether it
    is listed or not; listing decides only what discovery finds.
    """

    id: str
    name: str
    enabled: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("id", "name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "/" in value:
                raise ValueError(f"IamProject.{name} must be a non-empty text without '/'")


@dataclass(frozen=True, slots=True)
class ProjectFailure:
    """Answer the first ``count`` page requests of one project with an HSS error.

    ``count=None`` fails every request (a project the caller may not read). The real API
    answers HSS errors with HTTP 400 (``facts.md``); another status can be chosen.
    """

    count: int | None = None
    status: int = 400
    error_code: str = "HSS.0013"
    error_msg: str = "Insufficient permissions to access the resource."

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 0:
            raise ValueError(f"ProjectFailure.count must be >= 0 or None, got {self.count}")
        if not 400 <= self.status <= 599:
            raise ValueError(
                f"ProjectFailure.status must be an HTTP error status, got {self.status}"
            )


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Injected faults, all off by default and deterministic by the simulator's seed.

    Transport faults are drawn per request (one draw per request, per project stream), so at
    most one of them hits a request; their rates must sum to at most 1. Once one triggers,
    the next ``burst`` requests of the same project fail the same way. ``projects`` limits
    transport faults to some projects (``None``: every project).

    Data faults are a property of a record: a record drawn bad is served the same bad way on
    every request. The rates are independent fractions of the records.
    """

    http_500_rate: float = 0.0
    http_503_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    invalid_json_rate: float = 0.0
    html_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    burst: int = 0
    projects: frozenset[str] | None = None
    project_failures: Mapping[str, ProjectFailure] = field(default_factory=dict)
    numeric_string_rate: float = 0.0
    fraction_rate: float = 0.0
    iso_date_rate: float = 0.0
    missing_field_rate: float = 0.0
    extra_field_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (*_TRANSPORT_RATES, *_DATA_RATES):
            _check_rate(name, getattr(self, name))
        total = sum(getattr(self, name) for name in _TRANSPORT_RATES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"transport fault rates must sum to at most 1, got {total:g}")
        if self.slow_seconds < 0:
            raise ValueError(f"slow_seconds must be >= 0, got {self.slow_seconds}")
        if self.burst < 0:
            raise ValueError(f"burst must be >= 0, got {self.burst}")
        if self.projects is not None:
            object.__setattr__(self, "projects", _frozen_set("projects", self.projects))
        failures = dict(self.project_failures)
        for project, failure in failures.items():
            if not isinstance(failure, ProjectFailure):
                raise TypeError(f"project_failures[{project!r}] must be a ProjectFailure")
        object.__setattr__(self, "project_failures", MappingProxyType(failures))

    @property
    def transport_enabled(self) -> bool:
        return any(getattr(self, name) > 0 for name in _TRANSPORT_RATES)

    @property
    def data_enabled(self) -> bool:
        return any(getattr(self, name) > 0 for name in _DATA_RATES)


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Data changing during a crawl.

    After every ``every_n_requests`` page requests for a project, ``deletes`` records are
    removed and ``inserts`` new ones added, at seeded random positions at or before the end
    of the page just served, so later offsets shift. Then ``moves`` records, at seeded random
    positions anywhere after the first, are moved to the front one after the other (a list
    sorted by a time that changes): they keep their identity, so they count as present the
    whole time. ``max_events`` bounds the number of changes per project (``None``:
    unbounded); ``projects`` limits drift to some projects.
    """

    every_n_requests: int = 0
    inserts: int = 0
    deletes: int = 0
    max_events: int | None = None
    projects: frozenset[str] | None = None
    moves: int = 0

    def __post_init__(self) -> None:
        for name in ("every_n_requests", "inserts", "deletes", "moves"):
            if getattr(self, name) < 0:
                raise ValueError(f"DriftConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_events is not None and self.max_events < 0:
            raise ValueError(f"DriftConfig.max_events must be >= 0, got {self.max_events}")
        if self.projects is not None:
            object.__setattr__(self, "projects", _frozen_set("projects", self.projects))

    @property
    def enabled(self) -> bool:
        return self.every_n_requests > 0 and (
            self.inserts > 0 or self.deletes > 0 or self.moves > 0
        )

    def applies_to(self, project_id: str) -> bool:
        return self.enabled and (self.projects is None or project_id in self.projects)


MAX_DAY = 10_000
"""The last day the simulator serves (a rescan's seeded draw is keyed by key and day)."""

_PAGE_RATES = ("short_page_rate", "empty_page_rate", "missing_data_list_rate", "swap_rate")


@dataclass(frozen=True, slots=True)
class PageCut:
    """Cut the first ``times`` answers for the page requested at ``offset`` (per project) to
    their first ``length`` records (never more than the page would hold)."""

    offset: int
    length: int
    times: int = 1

    def __post_init__(self) -> None:
        _check_count("PageCut.offset", self.offset)
        _check_count("PageCut.length", self.length)
        _check_count("PageCut.times", self.times, minimum=1)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """What a real API gateway may do that the reference does not rule out; all off by
    default and deterministic by the simulator's seed.

    ``page_cap`` is a property of the server: a page holds at most that many records
    whatever ``limit`` asks (``limit`` is still validated, ``total_num`` is unaffected).

    The page behaviours are drawn per page response from one seeded stream per project (so a
    re-read of the same page usually gets it whole); at most one hits a response and their
    rates must sum to at most 1:

    - ``short_page_rate``: a page of n >= 2 records holds only its first k, k a seeded
      uniform integer in [1, n - 1];
    - ``empty_page_rate``: ``data_list`` is ``[]`` although records exist there;
    - ``missing_data_list_rate``: the body is ``{"total_num": N}`` with no ``data_list``;
    - ``swap_rate``: the page is served as if the records at positions ``end - 2`` and
      ``end`` were swapped (``end`` = offset + records served): its second-to-last record
      is replaced by the record just after the page, when both exist. The list itself does
      not change (a sort on a non-unique key).

    ``total_num`` stays as it would be under all four. It is reported as the true total plus
    ``total_skew`` (negative: it lags, positive: it leads) plus a seeded uniform integer in
    ``[-total_jitter, total_jitter]`` drawn per page response, clamped at 0.

    Three deterministic misbehaviours, counted per project (not drawn), apply to a page
    after the drawn behaviour, in this order:

    - ``serve_until``: a server that stops serving past a list position (like the cap, a
      property of the server): records at positions >= ``serve_until`` are never in
      ``data_list`` (pages are cut there, empty past it); ``total_num`` is unaffected;
    - ``cut_pages``: the first ``times`` answers for the page requested at ``offset`` hold
      only its first ``length`` records (see :class:`PageCut`; one cut per offset);
    - ``short_at_total``: the first that many answers whose records would reach past the
      reported total T (``offset < T < offset + served``) are cut to end exactly at T: a
      stale total and a short page that ends at it, by coincidence.
    """

    page_cap: int | None = None
    short_page_rate: float = 0.0
    empty_page_rate: float = 0.0
    missing_data_list_rate: float = 0.0
    swap_rate: float = 0.0
    total_skew: int = 0
    total_jitter: int = 0
    cut_pages: tuple[PageCut, ...] = ()
    short_at_total: int = 0
    serve_until: int | None = None

    def __post_init__(self) -> None:
        cuts = tuple(self.cut_pages)
        if not all(isinstance(cut, PageCut) for cut in cuts):
            raise TypeError("GatewayConfig.cut_pages must hold PageCut values")
        offsets = [cut.offset for cut in cuts]
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"GatewayConfig.cut_pages names an offset twice: {sorted(offsets)}")
        object.__setattr__(self, "cut_pages", cuts)
        _check_count("GatewayConfig.short_at_total", self.short_at_total)
        if self.serve_until is not None:
            _check_count("GatewayConfig.serve_until", self.serve_until)
        if self.page_cap is not None:
            _check_count("GatewayConfig.page_cap", self.page_cap, minimum=1)
        for name in _PAGE_RATES:
            _check_rate(f"GatewayConfig.{name}", getattr(self, name))
        total = sum(getattr(self, name) for name in _PAGE_RATES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"gateway page behaviour rates must sum to at most 1, got {total:g}")
        _check_count("GatewayConfig.total_skew", self.total_skew, minimum=None)
        _check_count("GatewayConfig.total_jitter", self.total_jitter)

    @property
    def page_enabled(self) -> bool:
        """Whether any page behaviour (short, empty, missing data_list, swap) is on."""
        return any(getattr(self, name) > 0 for name in _PAGE_RATES)

    @property
    def total_enabled(self) -> bool:
        """Whether ``total_num`` is reported other than true."""
        return self.total_skew != 0 or self.total_jitter > 0

    @property
    def cuts_enabled(self) -> bool:
        """Whether pages are cut per answer (``cut_pages``, ``short_at_total``)."""
        return bool(self.cut_pages) or self.short_at_total > 0


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """What the simulated API serves and how it behaves.

    Auth is on when any credential is configured: ``tokens`` (accepted ``X-Auth-Token``s),
    ``expired_tokens`` (answered ``APIG.0307``), ``access_keys`` (AK -> SK, verified as
    ``SDK-HMAC-SHA256`` signatures within ``signature_max_skew_s`` of the server's clock;
    an AK in ``security_tokens`` is temporary and needs that ``X-Security-Token``) or
    ``iam_users`` ((domain, user) -> password, who may get project- or domain-scoped tokens
    from ``POST /v3/auth/tokens``, valid for ``iam_token_ttl_s``). ``iam_projects`` is what
    ``GET /v3/auth/projects`` lists for any accepted credential (token, AK/SK signature,
    or a token the simulated IAM issued, of either scope). ``lockout_failures`` failed
    signatures in a row lock an AK for ``lockout_s`` seconds (0: never lock).

    ``rate`` is requests per second per credential (0: unlimited) with a bucket of ``burst``
    (default: the rate rounded up); ``rate_per_minute`` adds a per-minute limit (0: none).
    The credential is the token, the access key, or the IAM user of an issued token.
    ``retry_after`` (seconds) is sent in ``Retry-After`` on 429 when set.

    ``shared_image_rate`` is about the fraction of records that show the same image as an
    earlier record of the project (same ``image_id``, ``image_digest``, ``image_name``,
    ``image_version``, type, size, times and counts) on a different host (``host_name``,
    ``host_id``, ``agent_id``): ``image_id`` alone is then not unique, the natural key
    (``image_id, image_digest, image_name, image_version, host_id, agent_id``) still is.
    Records of one image lie within 64 places of each other in the initial order. At most
    all but one record in ``min(64, hosts)`` can share (the host pool is a 25th of the
    project's records, up to 20,000); a project of fewer than 50 records has one host and
    shares nothing.

    Rows that test how a crawl tells records apart, each a seeded choice of records per
    project (at most all of them):

    - ``no_update_time``: records served without ``latest_update_time``; the
      ``start_/end_latest_update_time`` filters never match them (they are in the
      unfiltered list and its ``total_num``);
    - ``duplicate_rows``: records listed twice, back to back, identical in every field (the
      list and ``total_num`` count both copies);
    - ``conflicting_rows``: records each followed by another with the same natural-key
      fields but a different ``vul_num`` (one more); both are listed and counted. Duplicate
      and conflicting rows are drawn from distinct records.

    ``day``: serve the inventory as it is on that day (``connector.simulator.days``): day 0
    is the one above; each later day removes ``daily_remove_rate``, rescans
    ``daily_rescan_rate`` and adds ``daily_appear_rate`` of the records present the day
    before, deterministic by the seed.
    """

    seed: int = 0
    records: int = 1000
    project_records: Mapping[str, int] = field(default_factory=dict)
    tokens: frozenset[str] = field(default=frozenset(), repr=False)
    expired_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    rate: float = 0.0
    burst: int | None = None
    rate_per_minute: int = 0
    retry_after: int | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    max_offset: int = 2_000_000
    faults: FaultConfig = field(default_factory=FaultConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    shared_image_rate: float = 0.0
    access_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    security_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    signature_max_skew_s: float = 900.0
    lockout_failures: int = 5
    lockout_s: float = 300.0
    iam_users: Mapping[tuple[str, str], str] = field(default_factory=dict, repr=False)
    iam_token_ttl_s: float = 86400.0
    iam_projects: tuple[IamProject, ...] = ()
    no_update_time: int = 0
    duplicate_rows: int = 0
    conflicting_rows: int = 0
    day: int = 0
    daily_appear_rate: float = 0.03
    daily_remove_rate: float = 0.02
    daily_rescan_rate: float = 0.05

    def __post_init__(self) -> None:
        for name in ("no_update_time", "duplicate_rows", "conflicting_rows"):
            _check_count(name, getattr(self, name))
        _check_count("day", self.day)
        if self.day > MAX_DAY:
            raise ValueError(f"day must be at most {MAX_DAY}, got {self.day}")
        for name in ("daily_appear_rate", "daily_remove_rate", "daily_rescan_rate"):
            _check_rate(name, getattr(self, name))
        if self.daily_remove_rate + self.daily_rescan_rate > 1.0 + 1e-9:
            raise ValueError(
                "daily_remove_rate + daily_rescan_rate must be at most 1 (a record is removed "
                "or rescanned on a day, not both)"
            )
        if self.records < 0:
            raise ValueError(f"records must be >= 0, got {self.records}")
        overrides = dict(self.project_records)
        for project, count in overrides.items():
            if count < 0:
                raise ValueError(f"project_records[{project!r}] must be >= 0, got {count}")
        object.__setattr__(self, "project_records", MappingProxyType(overrides))
        object.__setattr__(self, "tokens", _frozen_set("tokens", self.tokens))
        object.__setattr__(
            self, "expired_tokens", _frozen_set("expired_tokens", self.expired_tokens)
        )
        self._check_credentials()
        projects = tuple(self.iam_projects)
        if not all(isinstance(p, IamProject) for p in projects):
            raise TypeError("iam_projects must hold IamProject values")
        ids = [p.id for p in projects]
        if len(set(ids)) != len(ids):
            raise ValueError(f"iam_projects lists a project id twice: {sorted(ids)}")
        object.__setattr__(self, "iam_projects", projects)
        if self.rate < 0 or math.isnan(self.rate):
            raise ValueError(f"rate must be >= 0 (0 = unlimited), got {self.rate}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")
        if self.rate_per_minute < 0:
            raise ValueError(f"rate_per_minute must be >= 0, got {self.rate_per_minute}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {self.retry_after}")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        if self.max_offset < 0:
            raise ValueError(f"max_offset must be >= 0, got {self.max_offset}")
        _check_rate("shared_image_rate", self.shared_image_rate)
        for name, kind in (
            ("faults", FaultConfig),
            ("drift", DriftConfig),
            ("gateway", GatewayConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"{name} must be a {kind.__name__}")

    def _check_credentials(self) -> None:
        keys = _check_mapping("access_keys", self.access_keys)
        temporary = _check_mapping("security_tokens", self.security_tokens)
        unknown = sorted(set(temporary) - set(keys))
        if unknown:
            raise ValueError(
                f"security_tokens names access keys without a secret key: {', '.join(unknown)}"
            )
        object.__setattr__(self, "access_keys", MappingProxyType(keys))
        object.__setattr__(self, "security_tokens", MappingProxyType(temporary))
        object.__setattr__(self, "iam_users", MappingProxyType(_check_users(self.iam_users)))
        for name in ("signature_max_skew_s", "lockout_s", "iam_token_ttl_s"):
            value = getattr(self, name)
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.lockout_failures < 0:
            raise ValueError(
                f"lockout_failures must be >= 0 (0 = never lock), got {self.lockout_failures}"
            )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens or self.expired_tokens or self.access_keys or self.iam_users)

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """The credential kinds accepted, for messages: ``token``, ``AK/SK``, ``IAM``."""
        methods = (
            ("token", bool(self.tokens or self.expired_tokens)),
            ("AK/SK", bool(self.access_keys)),
            ("IAM", bool(self.iam_users)),
        )
        return tuple(name for name, on in methods if on)

    @property
    def effective_burst(self) -> int:
        """The per-second bucket size: ``burst`` or the rate rounded up (at least 1)."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate))

    def records_for(self, project_id: str) -> int:
        return self.project_records.get(project_id, self.records)
