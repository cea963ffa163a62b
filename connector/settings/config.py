"""Run configuration: frozen dataclasses that validate themselves.

Every query parameter of the API is a field of ``Filters``; the CLI derives its flags from
those fields, so a parameter cannot be documented in one place and missing in another.
"""

from __future__ import annotations

import ipaddress
import math
import re
import secrets
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal
from urllib.parse import urlsplit

from connector.errors import ConfigError
from connector.job.memory import MIN_BUDGET
from connector.settings.names import setting
from connector.source.signing import AkSkCredentials

__all__ = [
    "DEFAULT_TABLE",
    "FORMATS",
    "MAX_PAGE_SIZE",
    "MIN_PAGE_SIZE",
    "REGIONS",
    "Auth",
    "Config",
    "FetchSettings",
    "Filters",
    "IamPassword",
    "QuarantineLimit",
    "ReadDate",
    "RetryPolicy",
    "Secret",
    "Target",
    "TotalTolerance",
    "check_credential",
    "check_snapshot_date",
    "check_table_settings",
    "endpoint_for_region",
    "iam_endpoint_for",
    "new_run_id",
    "region_of",
]

MIN_PAGE_SIZE = 10
MAX_PAGE_SIZE = 200
MAX_OFFSET = 2_000_000
MAX_TIMEOUT_S = 3600.0
MAX_RETRY_TIME_S = 86_400.0
ALL_GRANTED_EPS = "all_granted_eps"

SCAN_STATUS = ("unscan", "success", "scanning", "failed", "waiting_for_scan")
LOCAL_IMAGE_TYPE = ("other_image", "swr_image")

REGIONS = (
    "cn-north-9", "cn-north-1", "cn-north-4", "cn-southwest-2", "cn-east-2", "cn-east-3",
    "cn-east-4", "cn-south-1", "cn-south-2", "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "na-mexico-1", "af-south-1", "sa-brazil-1", "la-south-2", "cn-south-4",
    "la-north-2", "tr-west-1", "cn-north-2", "ap-southeast-4", "ae-ad-1", "me-east-1",
    "cn-east-5", "my-kualalumpur-1", "eu-west-101", "ru-moscow-1", "cn-north-12",
    "cn-southwest-3", "cn-north-11", "af-north-1", "ap-southeast-5",
)  # fmt: skip


def endpoint_for_region(region: str) -> str:
    """The public-cloud HSS endpoint of ``region`` (from the provider's region table)."""
    if region not in REGIONS:
        raise ConfigError(
            f"unknown region {region!r}; known regions: {', '.join(sorted(REGIONS))} "
            f"(use {setting('endpoint')} for dedicated or partner clouds)",
            setting="region",
        )
    if region == "eu-west-101":
        return "https://hss.eu-west-101.myhuaweicloud.eu"
    return f"https://hss.{region}.myhuaweicloud.com"


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20261128T043329Z-3f9a1c``."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{moment}-{secrets.token_hex(3)}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_credential(value: str, *, where: str | None = None) -> str:
    """A credential that can be sent as it is: no control character (a line break, a tab,
    NUL) inside, which no gateway accepts in a header. The error names ``where`` it came
    from (an option, a file, a variable), never the value."""
    if _CONTROL.search(value):
        raise ConfigError(
            "the credential holds a control character (a line break, a tab or NUL inside "
            "it?); its value is not shown",
            where=where,
        )
    return value


class Secret:
    """A credential that never shows itself in a repr, a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ConfigError("a credential is empty")
        self._value = check_credential(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


def _filter(help_text: str, kind: str = "str", choices: tuple[str, ...] | None = None) -> Any:
    return field(default=None, metadata={"help": help_text, "kind": kind, "choices": choices})


@dataclass(frozen=True, slots=True)
class Filters:
    """The API's query parameters (all optional), with the reference's semantics."""

    enterprise_project_id: str | None = field(
        default=ALL_GRANTED_EPS,
        metadata={
            "help": "Enterprise project ID. Default all_granted_eps: every enterprise project "
            "the credentials may see (the API's own default, '0', is only the default "
            "enterprise project and silently leaves out images in any other).",
            "kind": "str",
            "choices": None,
        },
    )
    image_name: str | None = _filter("Image name (partial, case-sensitive match).")
    image_version: str | None = _filter(
        f"Image version; only used together with {setting('image_name')}."
    )
    scan_status: str | None = _filter("Scan status.", choices=SCAN_STATUS)
    local_image_type: str | None = _filter("Local image type.", choices=LOCAL_IMAGE_TYPE)
    image_size: int | None = _filter("Image size in bytes (exact match).", "int")
    start_latest_update_time: int | None = _filter(
        "Start of the latest-update-time range, epoch ms "
        f"(with {setting('end_latest_update_time')}).",
        "time",
    )
    end_latest_update_time: int | None = _filter(
        "End of the latest-update-time range, epoch ms.", "time"
    )
    start_latest_scan_time: int | None = _filter(
        f"Start of the latest-scan-time range, epoch ms (with {setting('end_latest_scan_time')}).",
        "time",
    )
    end_latest_scan_time: int | None = _filter(
        "End of the latest-scan-time range, epoch ms.", "time"
    )
    has_vul: bool | None = _filter(
        "Only images with (true) or without (false) vulnerabilities.", "bool"
    )
    host_name: str | None = _filter("Server name (partial match).")
    host_id: str | None = _filter("Server ID (exact match).")
    host_ip: str | None = _filter("Server IP address, public or private (exact match).")
    container_id: str | None = _filter("Container ID (exact match).")
    container_name: str | None = _filter("Container name (partial match).")
    pod_id: str | None = _filter("Pod ID (exact match).")
    pod_name: str | None = _filter("Pod name (partial match).")
    app_name: str | None = _filter("Software name (partial match).")
    has_container: bool | None = _filter(
        "Only images with (true) or without (false) containers (public-cloud edition).", "bool"
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                check_filter(f.name, value)
        if self.image_version is not None and self.image_name is None:
            raise ConfigError(
                f"the API ignores {setting('image_version')} without {setting('image_name')}; "
                "give both",
                setting="image_version",
            )
        for what in ("latest_update_time", "latest_scan_time"):
            start, end = getattr(self, f"start_{what}"), getattr(self, f"end_{what}")
            if (start is None) != (end is None):
                raise ConfigError(
                    f"{setting('start_' + what)} and {setting('end_' + what)} go together; "
                    "give both"
                )
            if start is not None and end is not None and start > end:
                raise ConfigError(
                    f"the range is empty: start {start} is after end {end}",
                    setting="start_" + what,
                )

    def params(self) -> list[tuple[str, str | int | bool]]:
        return [(f.name, v) for f in fields(self) if (v := getattr(self, f.name)) is not None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried: bounded by attempts and by total time."""

    max_attempts: int = 8
    max_elapsed_s: float = 300.0
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    throttle_delay_s: float = 2.0
    """The provider advises retrying throttled calls after 2 to 5 seconds: the least wait
    before the first retry; ``retry.delay_for`` spreads and doubles it."""

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigError(
                f"expected an integer, got {self.max_attempts!r}", setting="max_attempts"
            )
        if self.max_attempts < 1:
            raise ConfigError(
                f"must be at least 1, got {self.max_attempts}", setting="max_attempts"
            )
        check_seconds(self.max_elapsed_s, key="max_retry_time", maximum=MAX_RETRY_TIME_S)
        for name in ("base_delay_s", "max_delay_s", "throttle_delay_s"):
            check_seconds(
                getattr(self, name),
                where=f"RetryPolicy.{name}",  # no setting: only code sets these
                maximum=MAX_RETRY_TIME_S,
                zero=True,
            )


_FILTER_FIELDS = {f.name: f for f in fields(Filters)}


def check_filter(name: str, value: Any) -> None:
    """One filter's value on its own; an error names the filter (``setting``)."""
    spec = _FILTER_FIELDS.get(name)
    if spec is None:
        raise ConfigError(f"unknown filter; known: {', '.join(_FILTER_FIELDS)}", setting=name)
    kind, choices = spec.metadata["kind"], spec.metadata["choices"]
    if kind in ("int", "time"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", setting=name)
        if value < 0 or value > 2**63 - 1:
            raise ConfigError(f"must be between 0 and 2^63-1, got {value}", setting=name)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", setting=name)
    else:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"expected a non-empty text, got {value!r}", setting=name)
        if choices and value not in choices:
            raise ConfigError(
                f"{value!r} is not one of {', '.join(choices)} (the API would silently "
                "return nothing for it)",
                setting=name,
            )


def check_seconds(
    value: Any,
    *,
    key: str | None = None,
    where: str | None = None,
    maximum: float,
    zero: bool = False,
) -> float:
    """A finite number of seconds in (0, maximum] (or [0, maximum] with ``zero``)."""
    lowest = "0" if zero else "more than 0"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (value >= 0 if zero else value > 0)
        or value > maximum
    ):
        raise ConfigError(
            f"must be a number of seconds from {lowest} to {maximum:g}, got {value!r}",
            where=where,
            setting=key,
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class TotalTolerance:
    """``total_num_tolerance``: how far ``total_num`` may differ from the records the list
    provably holds before the crawl calls it data loss.

    Some gateways over-count ``total_num``; a user who knows theirs does accepts a difference
    of up to ``records`` records or ``percent`` percent of ``total_num`` (at most one of them
    non-zero; both zero, the default, means exact).
    """

    records: int = 0
    percent: float = 0.0

    ACCEPTED = (
        "a number of records like 10 or a percentage of total_num like 0.5% (from 0 to "
        "100); 0 means exact"
    )

    def __post_init__(self) -> None:
        at = "total_num_tolerance"
        if isinstance(self.records, bool) or not isinstance(self.records, int) or self.records < 0:
            raise ConfigError(
                f"the records must be an integer >= 0, got {self.records!r}", setting=at
            )
        if (
            isinstance(self.percent, bool)
            or not isinstance(self.percent, int | float)
            or not 0 <= self.percent <= 100  # also refuses NaN
        ):
            raise ConfigError(
                f"the percentage must be from 0 to 100, got {self.percent!r}", setting=at
            )
        if self.records and self.percent:
            raise ConfigError("give records or a percentage, not both", setting=at)
        object.__setattr__(self, "percent", float(self.percent))

    @classmethod
    def parse(cls, text: str) -> TotalTolerance:
        """``"10"`` (records) or ``"0.5%"`` / ``"2 %"`` (percent of ``total_num``); a
        ``ValueError`` saying what is accepted for anything else."""
        raw = text.strip()
        try:
            if raw.endswith("%"):
                number = raw[:-1].strip()
                if not number or number.startswith(("+", "-")):
                    raise ValueError
                return cls(percent=float(number))  # the range is checked there
            if not raw.isdigit():  # no sign, no "1e3", no "1_000"
                raise ValueError
            return cls(records=int(raw))
        except (ValueError, ConfigError):
            raise ValueError(f"expected {cls.ACCEPTED}, got {text!r}") from None

    def limit(self, total_num: int) -> int:
        """The largest difference accepted for this ``total_num``: ``records``, or
        ``floor(percent / 100 * total_num)`` computed exactly on the percentage as written
        (29% of 100 is 29, not the 28.999... of binary floating point)."""
        if self.records:
            return self.records
        return math.floor(Fraction(repr(self.percent)) * total_num / 100)

    def allows(self, total_num: int, records: int) -> bool:
        """Whether ``total_num`` is close enough to the ``records`` the list provably holds."""
        return abs(total_num - records) <= self.limit(total_num)

    def __str__(self) -> str:
        if not self.percent:
            return str(self.records)
        text = repr(self.percent)
        return f"{text.removesuffix('.0')}%"


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How pages are fetched: page size, rate limit, concurrency and timeouts."""

    page_size: int = MAX_PAGE_SIZE
    rate: float = 10.0
    """Requests per second for one credential on one endpoint; 0 means no limit."""
    burst: float = 2.0
    """The rate limiter's bucket, in requests (a number >= 1): in any window of t seconds at
    most ``rate * t + burst`` requests leave. 1 spaces requests exactly ``1 / rate`` apart,
    and every millisecond the event loop wakes late is lost for good (3 to 6 % of the rate
    at 50/s, measured); the default 2 lets the next request make up for a late one (up to a
    whole interval), so the sends keep the rate, and at most two ever leave back to back.
    Fractions work too (1.25 makes up a quarter interval and never sends two together). A
    429 after requests leaned on the bucket halves it."""
    concurrency: int = 8
    """Requests in flight per endpoint and credential (and workers per project). The rate
    needs ``rate x response time`` of them: 8 at 160 ms make 50/s. A run the cap held back
    says so at its end, with a value that reaches the rate (``RateLimiter.at_cap_s``)."""
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    """Longest pause between two chunks of an answer (aiohttp's ``sock_read``)."""
    request_timeout_s: float = 120.0
    """Longest one request may take, connecting to last byte: a body that trickles in is cut
    off here and retried (the read timeout alone never fires while bytes keep coming)."""
    max_offset: int = MAX_OFFSET
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_repair_rounds: int = 16
    """Rounds of re-reading (gaps, moved records, short pages) before a project fails."""
    total_tolerance: TotalTolerance = field(default_factory=TotalTolerance)
    """How far ``total_num`` may differ from the records the list provably holds (a gateway
    known to over-count); the default is exact."""

    def __post_init__(self) -> None:
        if not MIN_PAGE_SIZE <= self.page_size <= MAX_PAGE_SIZE:
            raise ConfigError(
                f"must be between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE} (the API's limit range), "
                f"got {self.page_size}",
                setting="page_size",
            )
        if isinstance(self.rate, bool) or not (
            isinstance(self.rate, int | float) and self.rate >= 0 and math.isfinite(self.rate)
        ):
            raise ConfigError(
                f"must be a number >= 0 (0 = no limit), got {self.rate}", setting="rate"
            )
        if isinstance(self.burst, bool) or not (
            isinstance(self.burst, int | float) and math.isfinite(self.burst) and self.burst >= 1
        ):
            raise ConfigError(
                f"must be a number of requests >= 1, got {self.burst}", setting="burst"
            )
        if not 1 <= self.concurrency <= 256:
            raise ConfigError(
                f"must be between 1 and 256, got {self.concurrency}", setting="concurrency"
            )
        check_seconds(self.connect_timeout_s, key="connect_timeout", maximum=MAX_TIMEOUT_S)
        check_seconds(self.read_timeout_s, key="read_timeout", maximum=MAX_TIMEOUT_S)
        check_seconds(self.request_timeout_s, key="request_timeout", maximum=MAX_TIMEOUT_S)
        if not 0 <= self.max_repair_rounds <= 1000:
            raise ConfigError(
                f"must be between 0 and 1000, got {self.max_repair_rounds}",
                setting="max_repair_rounds",
            )
        if not 0 <= self.max_offset <= MAX_OFFSET:
            raise ConfigError(
                f"must be between 0 and {MAX_OFFSET}, got {self.max_offset}", setting="max_offset"
            )
        if not isinstance(self.total_tolerance, TotalTolerance):
            raise ConfigError(
                f"expected a TotalTolerance, got {self.total_tolerance!r}",
                setting="total_num_tolerance",
            )


@dataclass(frozen=True, slots=True)
class IamPassword:
    """An IAM user's password identity: project-scoped tokens are obtained and renewed."""

    user: str
    password: Secret
    domain: str
    iam_endpoint: str | None = None
    """``https://iam.<region>.myhuaweicloud.com``; derived from a public-cloud HSS endpoint."""

    def __post_init__(self) -> None:
        if not self.user or not self.domain:
            raise ConfigError("HSS_IAM_USER and HSS_IAM_DOMAIN must not be empty")
        if self.iam_endpoint is not None:
            object.__setattr__(
                self, "iam_endpoint", check_endpoint(self.iam_endpoint, key="iam_endpoint")
            )


@dataclass(frozen=True, slots=True)
class Auth:
    """Credentials: exactly one of an IAM token, an AK/SK pair or an IAM password identity."""

    token: Secret | None = None
    aksk: AkSkCredentials | None = None
    iam: IamPassword | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.token, self.aksk, self.iam))
        if given != 1:
            raise ConfigError(
                f"give exactly one credential: a token (HSS_AUTH_TOKEN or {setting('token_file')}), "
                "an access key pair (HSS_ACCESS_KEY and HSS_SECRET_KEY, or "
                f"{setting('credentials_file')}), "
                "or an IAM password identity (HSS_IAM_USER, HSS_IAM_PASSWORD, HSS_IAM_DOMAIN)"
            )

    @property
    def kind(self) -> str:
        return "token" if self.token else "aksk" if self.aksk else "iam"

    def secrets(self) -> list[str]:
        """Every secret value, for scrubbing output in tests and logs."""
        found = [self.token.reveal()] if self.token else []
        if self.aksk:
            found.append(self.aksk.secret_key)
            if self.aksk.security_token:
                found.append(self.aksk.security_token)
        if self.iam:
            found.append(self.iam.password.reveal())
        return found


@dataclass(frozen=True, slots=True)
class QuarantineLimit:
    """``max_quarantined``: a count (``50``) or a share of fetched records (``1%``)."""

    count: int | None = None
    percent: float | None = 10.0

    def __post_init__(self) -> None:
        at = "max_quarantined"
        if (self.count is None) == (self.percent is None):
            raise ConfigError("give either a count or a percentage", setting=at)
        if self.count is not None and (
            isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0
        ):
            raise ConfigError(f"the count must be an integer >= 0, got {self.count!r}", setting=at)
        if self.percent is not None and not (
            isinstance(self.percent, int | float)
            and not isinstance(self.percent, bool)
            and 0 <= self.percent <= 100
        ):
            raise ConfigError(
                f"the percentage must be from 0 to 100, got {self.percent!r}", setting=at
            )

    @classmethod
    def parse(cls, text: str) -> QuarantineLimit:
        """``"50"`` or ``"1%"``; for anything else an error saying what is accepted (the
        range is checked where every limit is, in ``__post_init__``)."""
        raw = text.strip()
        try:
            if raw.endswith("%"):
                return cls(count=None, percent=float(raw[:-1]))
            return cls(count=int(raw), percent=None)
        except (ValueError, ConfigError):
            raise ConfigError(
                f"expected a count like 50 or a percentage like 1%, got {text!r}",
                setting="max_quarantined",
            ) from None

    def allows(self, quarantined: int, fetched: int) -> bool:
        if self.count is not None:
            return quarantined <= self.count
        assert self.percent is not None
        return quarantined <= fetched * self.percent / 100

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(
    url: str, *, allow_http: bool = False, key: str = "endpoint", where: str | None = None
) -> str:
    """A validated base URL without a trailing slash; an error names the setting ``key``
    (or ``where``, a place in other words)."""
    at = {"where": where, "setting": key}
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"expected an http(s) URL like https://hss.cn-north-4.myhuaweicloud.com, got {url!r}",
            **at,
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"must not carry a query or fragment: {url!r}", **at)
    if parts.scheme == "http" and not (allow_http or is_loopback(parts.hostname)):
        raise ConfigError(
            f"plain http:// sends credentials unencrypted; it is allowed only for loopback "
            f"addresses unless allow_insecure_http is true ({setting('allow_insecure_http')}, or "
            f"the key or connection extra allow_insecure_http) (got host {parts.hostname!r})",
            **at,
        )
    return url.rstrip("/")


def iam_endpoint_for(hss_endpoint: str) -> str | None:
    """The IAM endpoint of a public-cloud HSS endpoint (hss.<region>.... -> iam.<region>....)."""
    host = urlsplit(hss_endpoint).hostname or ""
    for suffix in (".myhuaweicloud.com", ".myhuaweicloud.eu"):
        if host.startswith("hss.") and host.endswith(suffix):
            return f"https://iam.{host[4:]}"
    return None


_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def region_of(hss_endpoint: str) -> str | None:
    """The region a public-cloud HSS endpoint names (``hss.<region>.myhuaweicloud.com``)."""
    host = urlsplit(hss_endpoint).hostname or ""
    for suffix in (".myhuaweicloud.com", ".myhuaweicloud.eu"):
        region = host.removeprefix("hss.").removesuffix(suffix)
        if host.startswith("hss.") and host.endswith(suffix) and _REGION.fullmatch(region):
            return region
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """One project, the endpoint that serves it, and its own query parameters if any."""

    project_id: str
    endpoint: str
    filters: Filters | None = None
    """The project's own query parameters (its enterprise project, its filters): the run's
    ``Config.filters`` with the project's overrides. ``None``: the run's."""
    from_run: bool = field(default=False, compare=False, repr=False)
    """The endpoint is the run's (``Config`` was given a bare project id): a ``Config``
    made with ``dataclasses.replace(config, endpoint=...)`` moves the project with it."""

    def __post_init__(self) -> None:
        check_project_id(self.project_id)


_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_project_id(project_id: str) -> str:
    if not _PROJECT_ID.fullmatch(project_id) or project_id in (".", ".."):
        raise ConfigError(
            f"{project_id!r} is not a project ID (letters, digits, '.', '_' or '-', up to 128 "
            "characters, e.g. 0a1b2c3d4e5f60718293a4b5c6d7e8f9)",
            setting="project_ids",
        )
    return project_id


class ReadDate(date):
    """The default snapshot date: the UTC date the inventory is read on (none was given).

    A ``date`` in every way; its type records that nobody chose it, so the pipeline can take
    the date again when the run starts, and the report can say where the date came from.
    """

    __slots__ = ()

    @classmethod
    def now(cls) -> ReadDate:
        today = datetime.now(UTC).date()
        return cls(today.year, today.month, today.day)


FORMATS = ("parquet", "iceberg")
DEFAULT_TABLE = "hss.image_local_info"
_IDENTIFIER_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_table_settings(format: str, catalog: str | None, table: str | None, out: str) -> None:
    """``format``, and ``catalog`` and ``table`` only with ``iceberg``: an identifier of
    namespace and name; the embedded catalog (a SQLite file) only under a local ``out``."""
    if format not in FORMATS:
        raise ConfigError(f"expected one of {', '.join(FORMATS)}, got {format!r}", setting="format")
    for key, value in (("catalog", catalog), ("table", table)):
        if value is not None and format != "iceberg":
            raise ConfigError(
                f"names an Iceberg {key}, but the format is {format}: add "
                f"{setting('format')} iceberg, or leave {key} out",
                setting=key,
            )
    if catalog is not None and not _IDENTIFIER_PART.fullmatch(catalog.replace("-", "_")):
        raise ConfigError(
            f"expected a catalog name like lakehouse (letters, digits, '_', '-'), got {catalog!r}",
            setting="catalog",
        )
    if table is not None:
        parts = table.split(".")
        if len(parts) < 2 or not all(_IDENTIFIER_PART.fullmatch(p) for p in parts):
            raise ConfigError(
                f"expected namespace.name like {DEFAULT_TABLE} (letters, digits, '_'), "
                f"got {table!r}",
                setting="table",
            )
    if format == "iceberg" and catalog is None and "://" in out:
        raise ConfigError(
            f"the embedded Iceberg catalog is a SQLite file under {setting('out')}, which must "
            f"then be a local folder, not {out!r}: for a warehouse on object storage name a "
            f"catalog with {setting('catalog')} (its warehouse an s3:// URL)",
            setting="out",
        )


SnapshotOrigin = Literal["default", "given", "opt-in"]


def check_snapshot_date(
    value: date, *, allow_any: bool = False, today: date | None = None
) -> SnapshotOrigin:
    """Where a snapshot date comes from; a date the inventory is not read on is refused.

    The API has no history: whatever the date, a run reads today's inventory. A snapshot is
    therefore labelled with the UTC date it is read on (``default``), or a date given for it
    that is today or yesterday (``given``: a run that started just before midnight), or any
    other date only with an explicit opt-in (``opt-in``: a backfill that knowingly labels
    today's inventory with another day).
    """
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ConfigError(f"expected a date, got {value!r}", setting="snapshot_date")
    today = today or datetime.now(UTC).date()
    if isinstance(value, ReadDate):
        return "default"
    if today - timedelta(days=1) <= value <= today:
        return "given"
    if allow_any:
        return "opt-in"
    raise ConfigError(
        f"{value.isoformat()} is not the date the inventory is read on (today is "
        f"{today.isoformat()}, UTC). The API has no history: a snapshot dated "
        f"{value.isoformat()} would hold today's images and replace that day's partition. "
        "Leave the date out (default: today), give today or yesterday (for a run that "
        f"started just before midnight), or pass {setting('allow_any_snapshot_date')} to label "
        "today's "
        "inventory with another date on purpose",
        setting="snapshot_date",
    )


@dataclass(frozen=True, slots=True)
class Config:
    """Everything one run needs. Build it with ``dataclasses.replace`` for variations."""

    projects: tuple[Target | str, ...]
    """The projects to read: ``Target``s, or bare ids read from ``endpoint``; kept as given,
    and read as ``targets`` (each a ``Target`` with its endpoint resolved)."""
    endpoint: str | None
    out: str
    auth: Auth
    filters: Filters = field(default_factory=Filters)
    """The run's query parameters; a ``Target`` with ``filters`` of its own uses those."""
    fetch: FetchSettings = field(default_factory=FetchSettings)
    snapshot_date: date = field(default_factory=ReadDate.now)
    """The ``snapshot_date`` partition: by default the UTC date the inventory is read on.
    Another date must be today or yesterday unless ``allow_any_snapshot_date``."""
    allow_any_snapshot_date: bool = False
    """Accept a snapshot date that is not the date of reading (a deliberate backfill label)."""
    max_quarantined: QuarantineLimit = field(default_factory=QuarantineLimit)
    allow_insecure_http: bool = False
    region: str | None = None
    """The endpoint's region when its host does not name it (a dedicated cloud, a proxy):
    ``all_projects`` reads the projects of this region."""
    iam_endpoint: str | None = None
    """IAM endpoint for ``all_projects`` (default: the IAM password identity's, else
    ``iam.<region>`` of a public-cloud endpoint)."""
    report_path: str | None = None
    run_id: str = field(default_factory=new_run_id)
    progress: Literal["auto", "bar", "log", "off"] = "auto"
    parallel_projects: int | None = None
    """At most this many projects read at the same time; ``None``: as many as
    ``memory_limit`` holds."""
    memory_limit: int | None = None
    """Bytes the reading projects' estimates may add up to (``connector.job.memory``);
    ``None``: a quarter of the memory available to the process, read when the run starts."""
    s3_endpoint: str | None = None
    """Endpoint of an S3-compatible store for ``s3://`` output (default: AWS_ENDPOINT_URL)."""
    all_projects: bool = False
    """List the projects the credential can access in the endpoint's region (IAM) and read each."""
    skip_published: bool = False
    """Leave out every project whose partition for this ``snapshot_date`` a run of the same
    query already published (a retry that resumes): no request, its files untouched."""
    format: Literal["parquet", "iceberg"] = "parquet"
    """``parquet``: hive-partitioned Parquet under ``out``; ``iceberg``: an Iceberg table, one
    commit per run (``connector.lake.iceberg``; the ``iceberg`` extra)."""
    catalog: str | None = None
    """With ``iceberg``: a pyiceberg catalog by name (``.pyiceberg.yaml``,
    ``PYICEBERG_CATALOG__NAME__...``); ``None``: the embedded SQLite catalog under ``out``."""
    table: str | None = None
    """With ``iceberg``: the table's identifier, ``namespace.name`` (default
    ``hss.image_local_info``)."""
    _snapshot_origin: SnapshotOrigin = field(
        init=False, repr=False, compare=False, default="default"
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_snapshot_origin",
            check_snapshot_date(self.snapshot_date, allow_any=self.allow_any_snapshot_date),
        )
        if self.region is not None and (
            not isinstance(self.region, str) or not _REGION.fullmatch(self.region)
        ):
            raise ConfigError(
                f"expected a region name like cn-north-4, got {self.region!r}",
                setting="discovery_region",
            )
        # Two inputs are normalised here, not by whoever builds a Config: ``Config(...)`` is
        # public and accepts an endpoint with a trailing slash, while every consumer builds
        # URLs from ``endpoint`` and ``iam_endpoint`` (the builder passes them unchanged, the
        # check returns them stripped). A frozen dataclass has no other hook before its
        # fields are set; ``projects`` is kept as given and resolved by ``targets``.
        if self.iam_endpoint is not None:
            object.__setattr__(
                self,
                "iam_endpoint",
                check_endpoint(
                    self.iam_endpoint, allow_http=self.allow_insecure_http, key="iam_endpoint"
                ),
            )
        if self.endpoint is not None:
            object.__setattr__(
                self, "endpoint", check_endpoint(self.endpoint, allow_http=self.allow_insecure_http)
            )
        if self.all_projects:
            self._check_discovery()
        elif not self.projects:
            raise ConfigError(
                "give at least one project id (or all projects)", setting="project_ids"
            )
        ids = [t.project_id for t in self.targets]  # resolving checks every project
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ConfigError(f"listed twice: {', '.join(twice)}", setting="project_ids")
        if self.parallel_projects is not None and not 1 <= self.parallel_projects <= 64:
            raise ConfigError(
                f"must be auto or between 1 and 64, got {self.parallel_projects}",
                setting="parallel_projects",
            )
        if self.memory_limit is not None and not (
            isinstance(self.memory_limit, int) and self.memory_limit >= MIN_BUDGET
        ):
            raise ConfigError(
                f"must be at least 1MiB, got {self.memory_limit!r}", setting="memory_limit"
            )
        if not self.out:
            raise ConfigError("give an output folder", setting="out")
        if self.auth.iam is not None and self.auth.iam.iam_endpoint is None:
            for endpoint in [t.endpoint for t in self.targets] or [self.endpoint or ""]:
                if iam_endpoint_for(endpoint) is None:
                    raise ConfigError(
                        f"cannot tell the IAM endpoint for {endpoint}: give {setting('iam_endpoint')} "
                        "(or HSS_IAM_ENDPOINT)"
                    )
        check_table_settings(self.format, self.catalog, self.table, self.out)
        if not re.fullmatch(r"[A-Za-z0-9T_-]{1,64}", self.run_id):
            raise ConfigError(f"run id {self.run_id!r} must be 1-64 letters, digits, '_' or '-'")

    def _check_discovery(self) -> None:
        """``all_projects``: no project ids, one endpoint, its region and IAM endpoint known."""
        at = "all_projects"
        if self.projects:
            raise ConfigError(
                f"give project ids or {setting('all_projects')} (which lists them through IAM), "
                "not both",
                setting=at,
            )
        if self.endpoint is None:
            raise ConfigError(
                "the projects are listed for one endpoint's region: give "
                f"{setting('endpoint')} or {setting('region')}",
                setting=at,
            )
        endpoint = check_endpoint(self.endpoint, allow_http=self.allow_insecure_http)
        named = region_of(endpoint)
        if self.region is not None:
            if named is not None and named != self.region:
                raise ConfigError(
                    f"the endpoint {endpoint} is in region {named}, not {self.region}",
                    setting="discovery_region",
                )
        elif named is None:
            raise ConfigError(
                f"cannot tell the region of {endpoint} (its host is not "
                "hss.<region>.myhuaweicloud.com): say which region's projects to read "
                f"with {setting('discovery_region')}",
                setting=at,
            )
        identity = self.auth.iam.iam_endpoint if self.auth.iam is not None else None
        if self.auth.iam is not None and identity is None and iam_endpoint_for(endpoint) is None:
            raise ConfigError(
                f"cannot tell the IAM endpoint for {endpoint}: give {setting('iam_endpoint')} "
                "(or HSS_IAM_ENDPOINT)",
                setting=at,
            )
        if (self.iam_endpoint or identity or iam_endpoint_for(endpoint)) is None:
            raise ConfigError(
                f"cannot tell the IAM endpoint that lists the projects of {endpoint}: give "
                f"it with {setting('iam_endpoint')}",
                setting=at,
            )

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every project as a ``Target`` with its endpoint checked: a bare id of
        ``projects`` (or a ``Target`` with ``from_run``) is read from the run's endpoint."""
        targets: list[Target] = []
        for item in self.projects:
            if isinstance(item, str) or item.from_run:
                project_id = item if isinstance(item, str) else item.project_id
                if self.endpoint is None:
                    raise ConfigError(
                        f"project {project_id!r} has no endpoint: give an endpoint or a region",
                        setting="endpoint",
                    )
                if isinstance(item, str):
                    item = Target(item, self.endpoint, from_run=True)
                elif item.endpoint != self.endpoint:
                    item = replace(item, endpoint=self.endpoint)
            checked = check_endpoint(item.endpoint, allow_http=self.allow_insecure_http)
            targets.append(item if checked == item.endpoint else replace(item, endpoint=checked))
        return tuple(targets)

    def filters_of(self, target: Target) -> Filters:
        """The query parameters a project is read with: its own, else the run's."""
        return target.filters if target.filters is not None else self.filters

    @property
    def project_ids(self) -> tuple[str, ...]:
        return tuple(t.project_id for t in self.targets)

    @property
    def snapshot_date_origin(self) -> SnapshotOrigin:
        """``default`` (the date of reading), ``given`` (today or yesterday, chosen) or
        ``opt-in`` (another date, with ``allow_any_snapshot_date``)."""
        return self._snapshot_origin

    def at_start(self) -> Config:
        """This config as a run starting now uses it: a default date is the date of reading
        now, and a given one is checked again (a Config may be built long before it runs)."""
        if self._snapshot_origin == "default":
            if self.snapshot_date == ReadDate.now():
                return self
            return replace(self, snapshot_date=ReadDate.now())
        check_snapshot_date(self.snapshot_date, allow_any=self.allow_any_snapshot_date)
        return self
