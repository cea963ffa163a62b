"""Fault injection, deterministic by seed.

Transport faults (:class:`TransportFaults`) are drawn per request from one seeded stream per
project, so a project's n-th request fails the same way whatever other projects do.
Data faults (:func:`apply_data_faults`) are drawn per record from the record's own hash,
so a record is served the same (bad) way every time.

A :class:`DataFault` says whether the record still carries correct data (``lossless``: a
numeric string such as ``"123"``, a missing optional field, an unknown extra field) or
not (a fraction where an integer belongs, a date string where epoch milliseconds belong),
which a connector must quarantine.
"""

from __future__ import annotations

import enum
import random
import struct
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from connector.simulator.config import FaultConfig, ProjectFailure
from connector.simulator.generator import Record
from connector.simulator.vocabulary import EXTRA_LABELS

__all__ = [
    "DataFault",
    "DataFaultKind",
    "TransportFault",
    "TransportFaults",
    "apply_data_faults",
]


class TransportFault(enum.Enum):
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    RESET = "reset"
    TRUNCATE = "truncated"
    INVALID_JSON = "invalid_json"
    HTML = "html"
    SLOW = "slow"


_RATE_FIELDS = (
    (TransportFault.HTTP_500, "http_500_rate"),
    (TransportFault.HTTP_503, "http_503_rate"),
    (TransportFault.RESET, "reset_rate"),
    (TransportFault.TRUNCATE, "truncate_rate"),
    (TransportFault.INVALID_JSON, "invalid_json_rate"),
    (TransportFault.HTML, "html_rate"),
    (TransportFault.SLOW, "slow_rate"),
)


class _Stream:
    __slots__ = ("burst_kind", "burst_left", "rng")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.burst_left = 0
        self.burst_kind: TransportFault | None = None


class TransportFaults:
    """Decides, request by request, whether and how a project's request fails."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self._config = config
        self._seed = seed
        self._streams: dict[str, _Stream] = {}
        self._failed: Counter[str] = Counter()
        edges: list[tuple[TransportFault, float]] = []
        total = 0.0
        for kind, name in _RATE_FIELDS:
            rate = float(getattr(config, name))
            if rate > 0:
                total += rate
                edges.append((kind, total))
        self._edges = tuple(edges)

    def project_failure(self, project_id: str) -> ProjectFailure | None:
        """The configured failure if this request of the project must fail, else ``None``."""
        failure = self._config.project_failures.get(project_id)
        if failure is None:
            return None
        if failure.count is not None and self._failed[project_id] >= failure.count:
            return None
        self._failed[project_id] += 1
        return failure

    def draw(self, project_id: str) -> TransportFault | None:
        if not self._edges:
            return None
        projects = self._config.projects
        if projects is not None and project_id not in projects:
            return None
        stream = self._streams.get(project_id)
        if stream is None:
            rng = random.Random(f"{self._seed}\x00{project_id}\x00transport")
            stream = self._streams[project_id] = _Stream(rng)
        if stream.burst_left > 0 and stream.burst_kind is not None:
            stream.burst_left -= 1
            return stream.burst_kind
        draw = stream.rng.random()
        for kind, edge in self._edges:
            if draw < edge:
                stream.burst_kind = kind
                stream.burst_left = self._config.burst
                return kind
        return None


class DataFaultKind(enum.Enum):
    NUMERIC_STRING = "numeric_string"
    FRACTION = "fraction"
    ISO_DATE = "iso_date"
    MISSING_FIELD = "missing_field"
    EXTRA_FIELD = "extra_field"

    @property
    def lossless(self) -> bool:
        return self not in (DataFaultKind.FRACTION, DataFaultKind.ISO_DATE)


@dataclass(frozen=True, slots=True)
class DataFault:
    """How one field of a served record departs from the reference."""

    kind: DataFaultKind
    field: str

    @property
    def lossless(self) -> bool:
        return self.kind.lossless


_U64X8 = struct.Struct("<8Q")
_INTEGER_FIELDS = (
    "image_size",
    "latest_update_time",
    "latest_scan_time",
    "vul_num",
    "unsafe_setting_num",
    "malicious_file_num",
    "host_num",
    "container_num",
    "component_num",
)
_TIME_FIELDS = ("latest_update_time", "latest_scan_time")
_COUNT_FIELDS = tuple(name for name in _INTEGER_FIELDS if name not in _TIME_FIELDS)
_DROPPABLE_FIELDS = (
    "image_digest",
    "image_version",
    "local_image_type",
    "scan_status",
    *_INTEGER_FIELDS,
    "scan_failed_desc",
    "severity_level",
    "host_name",
    "host_id",
    "agent_id",
    "non_scan_reason",
)
_CHINA_STANDARD_TIME = timezone(timedelta(hours=8))


def _iso_seconds(epoch_ms: int) -> str:
    """A local ISO-8601 date string: a different type and the milliseconds are lost."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC).astimezone(_CHINA_STANDARD_TIME)
    return moment.isoformat(timespec="seconds")


def _hit(word: int, rate: float) -> bool:
    return (word & 0xFFFFFFFF) < rate * 0x100000000


def apply_data_faults(
    record: Record, material: bytes, config: FaultConfig
) -> tuple[Record, tuple[DataFault, ...]]:
    """The record as served with data faults drawn from ``material`` (64 bytes), and which.

    Each fault touches a different field; ``image_id`` is never touched, so identity holds.
    """
    words = _U64X8.unpack(material)
    out = dict(record)
    faults: list[DataFault] = []
    touched = {"image_id"}

    def pick(candidates: tuple[str, ...], word: int, *, nonzero: bool = False) -> str | None:
        available = [
            name
            for name in candidates
            if name in out and name not in touched and not (nonzero and not out[name])
        ]
        if not available:
            return None
        name = available[(word >> 32) % len(available)]
        touched.add(name)
        return name

    if _hit(words[0], config.numeric_string_rate):
        name = pick(_INTEGER_FIELDS, words[0])
        if name is not None:
            out[name] = str(out[name])
            faults.append(DataFault(DataFaultKind.NUMERIC_STRING, name))
    if _hit(words[1], config.fraction_rate):
        name = pick(_COUNT_FIELDS, words[1])
        if name is not None:
            out[name] = out[name] + 0.5
            faults.append(DataFault(DataFaultKind.FRACTION, name))
    if _hit(words[2], config.iso_date_rate):
        name = pick(_TIME_FIELDS, words[2], nonzero=True)
        if name is not None:
            out[name] = _iso_seconds(out[name])
            faults.append(DataFault(DataFaultKind.ISO_DATE, name))
    if _hit(words[3], config.missing_field_rate):
        for word in words[3 : 3 + 1 + (words[6] & 1)]:
            name = pick(_DROPPABLE_FIELDS, word)
            if name is not None:
                del out[name]
                faults.append(DataFault(DataFaultKind.MISSING_FIELD, name))
    if _hit(words[4], config.extra_field_rate):
        out["image_labels"] = dict(EXTRA_LABELS[(words[4] >> 32) % len(EXTRA_LABELS)])
        out["risk_score"] = (words[5] % 100) / 10
        faults.append(DataFault(DataFaultKind.EXTRA_FIELD, "image_labels"))
        faults.append(DataFault(DataFaultKind.EXTRA_FIELD, "risk_score"))
    return out, tuple(faults)
