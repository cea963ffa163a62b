"""Query parameters: parsing, validation, and the filter conditions they stand for.

Semantics follow ``facts.md``: ``enterprise_project_id`` defaults to ``"0"``
(``all_granted_eps``: every enterprise project); ``image_name``, ``host_name``,
``container_name``, ``pod_name`` and ``app_name`` are partial, case-sensitive matches;
``image_version`` is exact and only counts together with ``image_name``; ``host_id``,
``host_ip``, ``container_id``, ``pod_id`` and ``image_size`` are exact; time ranges are
inclusive epoch milliseconds; an unknown enum value matches nothing (it is not an error);
an empty string counts as an absent parameter; unknown parameters are ignored.
A value that does not parse, or an out-of-range ``offset`` / ``limit``, is an
:class:`InvalidParameter` (HTTP 400, ``HSS.0001``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from connector.simulator.vocabulary import (
    ENTERPRISE_PROJECT_IDS,
    LOCAL_IMAGE_TYPES,
    SCAN_STATUSES,
    WAITING_FOR_SCAN,
)

__all__ = [
    "ALL_GRANTED_EPS",
    "LIMIT_MAX",
    "LIMIT_MIN",
    "Attribute",
    "Condition",
    "Filters",
    "InvalidParameter",
    "PageQuery",
    "filters_from_values",
    "parse_filters",
    "parse_page_query",
]

ALL_GRANTED_EPS = "all_granted_eps"
LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 10, 200, 10
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")

Attribute = Literal[
    "enterprise_project_id",
    "image_name",
    "image_version",
    "local_image_type",
    "scan_status",
    "image_size",
    "latest_update_time",
    "latest_scan_time",
    "vul_num",
    "container_num",
    "host_name",
    "host_id",
    "host_ip",
    "container_ids",
    "container_names",
    "pod_ids",
    "pod_names",
    "apps",
]


class InvalidParameter(Exception):
    """A query parameter that the API rejects with HTTP 400 / ``HSS.0001``."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(parameter, message)
        self.parameter = parameter
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Condition:
    """One filter on one attribute; ``equals`` marks an equality on a byte-coded column."""

    attribute: Attribute
    test: Callable[[Any], bool]
    cost: int
    equals: int | None = None


def _equals_code(attribute: Attribute, code: int) -> Condition:
    return Condition(attribute, lambda value: bool(value == code), 0, equals=code)


def _nothing(attribute: Attribute) -> Condition:
    return Condition(attribute, lambda value: False, 0)


def _partial(attribute: Attribute, needle: str, cost: int) -> Condition:
    return Condition(attribute, lambda value: needle in value, cost)


def _exact(attribute: Attribute, wanted: object, cost: int) -> Condition:
    return Condition(attribute, lambda value: bool(value == wanted), cost)


def _contains(attribute: Attribute, wanted: str) -> Condition:
    return Condition(attribute, lambda values: wanted in values, 10)


def _any_partial(attribute: Attribute, needle: str) -> Condition:
    return Condition(attribute, lambda values: any(needle in value for value in values), 10)


def _between(attribute: Attribute, low: int | None, high: int | None) -> Condition:
    lo = _INT64_MIN if low is None else low
    hi = _INT64_MAX if high is None else high
    # a time stored as 0 is absent (a never-scanned image, a record without an update
    # time): no range matches it
    return Condition(attribute, lambda value: value != 0 and lo <= value <= hi, 1)


@dataclass(frozen=True, slots=True)
class Filters:
    """The filter part of a query, canonical and hashable (a cache key)."""

    enterprise_project_id: str = "0"
    image_name: str | None = None
    image_version: str | None = None
    scan_status: str | None = None
    local_image_type: str | None = None
    image_size: int | None = None
    start_latest_update_time: int | None = None
    end_latest_update_time: int | None = None
    start_latest_scan_time: int | None = None
    end_latest_scan_time: int | None = None
    has_vul: bool | None = None
    host_name: str | None = None
    host_id: str | None = None
    host_ip: str | None = None
    container_id: str | None = None
    container_name: str | None = None
    pod_id: str | None = None
    pod_name: str | None = None
    app_name: str | None = None
    has_container: bool | None = None

    def conditions(self) -> tuple[Condition, ...]:
        """The conditions a record must meet, cheapest first."""
        out: list[Condition] = []
        if self.enterprise_project_id != ALL_GRANTED_EPS:
            out.append(_code_condition("enterprise_project_id", self.enterprise_project_id))
        if self.scan_status is not None:
            out.append(_code_condition("scan_status", self.scan_status))
        if self.local_image_type is not None:
            out.append(_code_condition("local_image_type", self.local_image_type))
        if self.image_size is not None:
            out.append(_exact("image_size", self.image_size, 1))
        if self.start_latest_update_time is not None or self.end_latest_update_time is not None:
            out.append(
                _between(
                    "latest_update_time",
                    self.start_latest_update_time,
                    self.end_latest_update_time,
                )
            )
        if self.start_latest_scan_time is not None or self.end_latest_scan_time is not None:
            out.append(
                _between(
                    "latest_scan_time",
                    self.start_latest_scan_time,
                    self.end_latest_scan_time,
                )
            )
        if self.has_vul is not None:
            wanted_vul = self.has_vul
            out.append(Condition("vul_num", lambda value: (value > 0) is wanted_vul, 1))
        if self.has_container is not None:
            wanted_cont = self.has_container
            out.append(Condition("container_num", lambda value: (value > 0) is wanted_cont, 1))
        if self.image_name is not None:
            out.append(_partial("image_name", self.image_name, 2))
            if self.image_version is not None:
                out.append(_exact("image_version", self.image_version, 2))
        if self.host_name is not None:
            out.append(_partial("host_name", self.host_name, 3))
        if self.host_id is not None:
            out.append(_exact("host_id", self.host_id, 3))
        if self.host_ip is not None:
            out.append(_exact("host_ip", self.host_ip, 3))
        if self.container_id is not None:
            out.append(_contains("container_ids", self.container_id))
        if self.container_name is not None:
            out.append(_any_partial("container_names", self.container_name))
        if self.pod_id is not None:
            out.append(_contains("pod_ids", self.pod_id))
        if self.pod_name is not None:
            out.append(_any_partial("pod_names", self.pod_name))
        if self.app_name is not None:
            out.append(_any_partial("apps", self.app_name))
        out.sort(key=lambda condition: condition.cost)
        return tuple(out)


# Query value -> code of the stored attribute. The response spells the last scan status
# "waiting" but the parameter accepts "waiting_for_scan" only.
_CODES: dict[Attribute, dict[str, int]] = {
    "enterprise_project_id": {ep: code for code, ep in enumerate(ENTERPRISE_PROJECT_IDS)},
    "scan_status": {
        (WAITING_FOR_SCAN if status == "waiting" else status): code
        for code, status in enumerate(SCAN_STATUSES)
    },
    "local_image_type": {kind: code for code, kind in enumerate(LOCAL_IMAGE_TYPES)},
}


def _code_condition(attribute: Attribute, value: str) -> Condition:
    code = _CODES[attribute].get(value)
    return _nothing(attribute) if code is None else _equals_code(attribute, code)


@dataclass(frozen=True, slots=True)
class PageQuery:
    filters: Filters
    offset: int
    limit: int


_INT_FILTERS = frozenset(
    {
        "image_size",
        "start_latest_update_time",
        "end_latest_update_time",
        "start_latest_scan_time",
        "end_latest_scan_time",
    }
)
_BOOL_FILTERS = frozenset({"has_vul", "has_container"})
_FILTER_NAMES = tuple(f.name for f in fields(Filters))


def _parse_int(name: str, raw: str) -> int:
    if _INTEGER.fullmatch(raw):
        value = int(raw)
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
    raise InvalidParameter(name, f"Invalid parameter '{name}': must be an integer, got {raw!r}.")


def _parse_bool(name: str, raw: str) -> bool:
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise InvalidParameter(name, f"Invalid parameter '{name}': must be true or false, got {raw!r}.")


def parse_filters(params: Mapping[str, str]) -> Filters:
    """The filters of a query string (first value of a repeated key wins)."""
    values: dict[str, object] = {}
    for name in _FILTER_NAMES:
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        if name in _INT_FILTERS:
            values[name] = _parse_int(name, raw)
        elif name in _BOOL_FILTERS:
            values[name] = _parse_bool(name, raw)
        else:
            values[name] = raw
    if "image_name" not in values:
        values.pop("image_version", None)
    return Filters(**values)  # type: ignore[arg-type]


def _bounded(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if _INTEGER.fullmatch(raw) and low <= int(raw) <= high:
        return int(raw)
    raise InvalidParameter(
        name,
        f"Invalid parameter '{name}': must be an integer between {low} and {high}, got {raw!r}.",
    )


def parse_page_query(params: Mapping[str, str], *, max_offset: int) -> PageQuery:
    """Parse and validate a request's query string, or raise :class:`InvalidParameter`."""
    return PageQuery(
        filters=parse_filters(params),
        offset=_bounded(params, "offset", 0, 0, max_offset),
        limit=_bounded(params, "limit", LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX),
    )


def _wire(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"filter values must be str, int or bool, got {type(value).__name__}")


def filters_from_values(values: Mapping[str, object]) -> Filters:
    """Filters from Python values (``has_vul=True``), validated like a query string.

    Unknown names raise :class:`TypeError` (a typo must not silently mean "no filter").
    """
    unknown = sorted(set(values) - set(_FILTER_NAMES))
    if unknown:
        raise TypeError(f"unknown filter(s) {unknown}; known: {list(_FILTER_NAMES)}")
    return parse_filters({name: _wire(value) for name, value in values.items()})
