"""The simulated inventory: every project's records, filtered results, drift bookkeeping.

Any project id has an inventory (``config.records`` images, or its override), created on
first use. Records are generated on demand (see ``generator``); a filter's matching keys
are computed once per (project, filters) and reused for every page until drift changes
the project. Records are served in a stable order: their position in the project's list.

For tests, :meth:`Inventory.records` returns exactly what the API serves for a filter,
all pages concatenated, and drift keeps two sets:

- :meth:`Inventory.stable_records`: present the whole time (a complete crawl must return
  each exactly once);
- :meth:`Inventory.ever_records`: present at some time (a crawl's output is a subset).

Records moved to the front by drift stay "stable": they were present the whole time.
Both sets hold distinct records: a row listed twice (``SimulatorConfig.duplicate_rows``) is
one record, as :meth:`Inventory.distinct_records` is of what the API serves now; a
conflicting row (``conflicting_rows``) is a record of its own.
With shared images (``SimulatorConfig.shared_image_rate``) ``image_id`` is not unique: use
:func:`natural_key` to tell records apart, and the ``..._by_natural_key`` variants of the
``image_id``-keyed helpers.

Not thread-safe: the server's event loop owns it; call it from another thread only while
no request is in flight.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from connector.simulator.config import SimulatorConfig
from connector.simulator.days import DayChanges, Days, rescanned_core
from connector.simulator.drift import DriftEvent, DriftPlanner
from connector.simulator.faults import DataFault, apply_data_faults
from connector.simulator.filters import Filters, PageQuery, filters_from_values
from connector.simulator.gateway import PageBehaviour, PageShape
from connector.simulator.generator import Hidden, ProjectGenerator, Record
from connector.simulator.table import Table
from connector.simulator.vocabulary import ENTERPRISE_PROJECT_IDS

__all__ = ["NATURAL_KEY", "Inventory", "NaturalKey", "Page", "natural_key"]

FilterValue = str | int | bool
NATURAL_KEY = ("image_id", "image_digest", "image_name", "image_version", "host_id", "agent_id")
"""The fields that identify a record: ``image_id`` alone does not when images are shared."""
NaturalKey = tuple[Any, ...]


def natural_key(record: Record) -> NaturalKey:
    """The record's :data:`NATURAL_KEY` values (``None`` for a field it lacks)."""
    return tuple(record.get(name) for name in NATURAL_KEY)


_RESULT_CACHE_SIZE = 256
_RECORD_CACHE_SIZE = 200_000  # the benchmark's 100,000 records stay generated once


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    encoded: list[bytes]
    """Each record of the page as JSON, encoded once when first served (served records
    never change)."""
    behaviour: PageBehaviour | None = None
    """The gateway behaviour that altered the page, if any (``MISSING_DATA_LIST``: the body
    has no ``data_list``)."""


class _Served(NamedTuple):
    """A generated record, as read from the cache."""

    record: Record
    faults: tuple[DataFault, ...]
    encoded: bytes


class _Project:
    __slots__ = (
        "days",
        "drift",
        "encoded",
        "events",
        "faults",
        "generator",
        "initial_count",
        "next_key",
        "page_requests",
        "results",
        "served",
        "table",
    )

    def __init__(self, config: SimulatorConfig, project_id: str) -> None:
        count = config.records_for(project_id)
        rows = _Rows(config, project_id, count)
        self.generator = ProjectGenerator(
            config.seed,
            project_id,
            count,
            config.shared_image_rate,
            no_update_time=rows.no_update_time,
            conflicts=rows.conflicts,
        )
        self.initial_count = count + len(rows.conflicts)
        """Keys below this were there on day 0 (later days and drift add keys from it on)."""
        self.next_key = self.initial_count
        self.days: Days | None = None
        order = rows.order
        if config.day:
            rates = (config.daily_appear_rate, config.daily_remove_rate, config.daily_rescan_rate)
            days = Days(config.seed, project_id, order, self.next_key, config.day, rates)
            generator = self.generator
            generator.revise(rescanned_core(generator.core, days.revisions, generator.day_digest))
            order, self.next_key, self.days = days.order, days.next_key, days
        self.table = Table(self.generator, order)
        self.results: dict[Filters, Sequence[int]] = {}
        self.served: dict[int, Record] = {}
        """Generated records, with their JSON in ``encoded`` and their data faults (if any)
        in ``faults``. Kept apart, not as one object per record: the garbage collector
        does not track a record of plain values, nor bytes, so a cache of 100,000 records
        costs a full collection almost nothing. As instances of a class they made each one
        take about 0.1 s: a stall in which requests piled up and reached the rate limit
        together, a burst no client sent."""
        self.encoded: dict[int, bytes] = {}
        self.faults: dict[int, tuple[DataFault, ...]] = {}
        self.page_requests = 0
        self.events: list[DriftEvent] = []
        self.drift = (
            DriftPlanner(config.drift, config.seed, project_id)
            if config.drift.applies_to(project_id)
            else None
        )

    def result(self, filters: Filters) -> Sequence[int]:
        keys = self.results.get(filters)
        if keys is None:
            if len(self.results) >= _RESULT_CACHE_SIZE:
                self.results.clear()
            keys = self.results[filters] = self.table.select(filters.conditions())
        return keys


class _Rows:
    """A project's initial list: which records lack an update time, which are listed twice
    (back to back), which are followed by a conflicting copy (key ``count + i``); one
    seeded choice per project."""

    __slots__ = ("conflicts", "no_update_time", "order")

    def __init__(self, config: SimulatorConfig, project_id: str, count: int) -> None:
        rng = random.Random(f"{config.seed}\x00{project_id}\x00rows")
        self.no_update_time = frozenset(rng.sample(range(count), min(config.no_update_time, count)))
        doubled = rng.sample(
            range(count), min(config.duplicate_rows + config.conflicting_rows, count)
        )
        duplicated = frozenset(doubled[: config.duplicate_rows])
        self.conflicts = {
            count + index: key for index, key in enumerate(sorted(doubled[config.duplicate_rows :]))
        }
        self.order: range | array[int] = range(count)
        if duplicated or self.conflicts:
            follower = {key: alias for alias, key in self.conflicts.items()}
            order = array("q")
            for key in range(count):
                order.append(key)
                if key in duplicated:
                    order.append(key)
                elif key in follower:
                    order.append(follower[key])
            self.order = order


class Inventory:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._projects: dict[str, _Project] = {}
        self._data_faults = config.faults.data_enabled
        self._page_cap = config.gateway.page_cap
        self._serve_until = config.gateway.serve_until

    enterprise_project_ids = ENTERPRISE_PROJECT_IDS
    """The enterprise projects records belong to ("0" is the default one)."""

    def _project(self, project_id: str) -> _Project:
        project = self._projects.get(project_id)
        if project is None:
            project = self._projects[project_id] = _Project(self.config, project_id)
        return project

    def _served(self, project: _Project, key: int) -> _Served:
        """The record as served, its data faults and its JSON (generated when first asked)."""
        record = project.served.get(key)
        if record is None:
            record = self._generate(project, key)
        return _Served(record, project.faults.get(key, ()), project.encoded[key])

    def _encoded(self, project: _Project, key: int) -> bytes:
        """The record's JSON: the serving path, one lookup once generated."""
        encoded = project.encoded.get(key)
        if encoded is None:
            self._generate(project, key)
            encoded = project.encoded[key]
        return encoded

    def _generate(self, project: _Project, key: int) -> Record:
        generator = project.generator
        record = generator.record(generator.core(key))
        faults: tuple[DataFault, ...] = ()
        if self._data_faults:
            material = generator.fault_material(key)
            record, faults = apply_data_faults(record, material, self.config.faults)
        if len(project.served) >= _RECORD_CACHE_SIZE:
            project.served.clear()
            project.encoded.clear()
            project.faults.clear()
        project.served[key] = record
        project.encoded[key] = orjson.dumps(record)
        if faults:
            project.faults[key] = faults
        return record

    # -- serving ---------------------------------------------------------------------

    def serve_page(self, project_id: str, query: PageQuery, shape: PageShape | None = None) -> Page:
        """One page as the API serves it; counts as a page request for drift.

        The page holds at most ``GatewayConfig.page_cap`` records and none at or past
        ``GatewayConfig.serve_until``; ``shape`` alters it once (drift still sees the page
        as it would have been).
        """
        project = self._project(project_id)
        result = project.result(query.filters)
        total = len(result)
        if self._serve_until is not None and self._serve_until < total:
            result = result[: self._serve_until]  # nothing past it, not even by a swap
        cap = self._page_cap
        limit = query.limit if cap is None or cap >= query.limit else cap
        keys = result[query.offset : query.offset + limit]
        if shape is None:
            page = Page(total, [self._encoded(project, key) for key in keys])
        else:
            served, behaviour = shape.apply(result, query.offset, keys)
            encoded = [self._encoded(project, key) for key in served]
            page = Page(total, encoded, behaviour)
        project.page_requests += 1
        if project.drift is not None and project.drift.due(project.page_requests):
            self._drift(project, project.drift, query.offset, keys)
        return page

    def _drift(
        self, project: _Project, planner: DriftPlanner, offset: int, page_keys: Sequence[int]
    ) -> None:
        table = project.table
        horizon = table.position(page_keys[-1]) + 1 if len(page_keys) else len(table)
        plan = planner.plan(len(table), horizon)
        deleted = [table.delete(position) for position in plan.deletes]
        inserted = []
        for position in plan.inserts:
            key = project.next_key
            project.next_key += 1
            table.insert(position, key)
            inserted.append(key)
        moved = [table.keys[position] for position in plan.moves]
        for position in sorted(plan.moves, reverse=True):
            table.delete(position)
        for key in moved:  # one after the other: the last one moved ends up first
            table.insert(0, key)
        project.results.clear()
        image_id = project.generator.image_id
        project.events.append(
            DriftEvent(
                request_number=project.page_requests,
                offset=offset,
                inserted=tuple(image_id(key) for key in inserted),
                deleted=tuple(image_id(key) for key in deleted),
                moved=tuple(image_id(key) for key in moved),
            )
        )

    # -- inspection (tests) ----------------------------------------------------------

    def _select(
        self, project: _Project, keys: Sequence[int] | None, filters: dict[str, FilterValue]
    ) -> Sequence[int]:
        parsed = filters_from_values(filters)
        if keys is None:
            return project.result(parsed)
        if isinstance(keys, list):
            keys = array("q", keys)
        assert isinstance(keys, range | array)
        return Table(project.generator, keys).select(parsed.conditions())

    def records(self, project_id: str, **filters: FilterValue) -> list[Record]:
        """Every record the API serves now for these filters, in serving order.

        Filters take Python values (``has_vul=True``) and mean what the query parameters
        mean (``enterprise_project_id`` defaults to ``"0"``).
        """
        project = self._project(project_id)
        return [dict(self._served(project, k).record) for k in self._select(project, None, filters)]

    def distinct_records(self, project_id: str, **filters: FilterValue) -> list[Record]:
        """:meth:`records` with each row listed twice kept once: what a correct crawl of an
        unchanging list outputs (in serving order)."""
        project = self._project(project_id)
        keys = dict.fromkeys(self._select(project, None, filters))
        return [dict(self._served(project, k).record) for k in keys]

    def total(self, project_id: str, **filters: FilterValue) -> int:
        """``total_num`` for these filters now."""
        project = self._project(project_id)
        return len(self._select(project, None, filters))

    def record_count(self, project_id: str) -> int:
        """How many records the project holds now, in every enterprise project."""
        return len(self._project(project_id).table)

    def stable_records(self, project_id: str, **filters: FilterValue) -> list[Record]:
        """Records present for the whole time since the project was created (serving order)."""
        project = self._project(project_id)
        keys = dict.fromkeys(key for key in project.table.keys if key < project.initial_count)
        stable = list(keys)  # a row listed twice is one record
        return [
            dict(self._served(project, k).record) for k in self._select(project, stable, filters)
        ]

    def ever_records(self, project_id: str, **filters: FilterValue) -> list[Record]:
        """Every record present at some time, deleted ones included (in creation order)."""
        project = self._project(project_id)
        every = range(project.next_key)
        return [
            dict(self._served(project, k).record) for k in self._select(project, every, filters)
        ]

    def drift_events(self, project_id: str) -> tuple[DriftEvent, ...]:
        return tuple(self._project(project_id).events)

    def page_requests(self, project_id: str) -> int:
        """Page requests served for the project so far (the drift counter)."""
        return self._project(project_id).page_requests

    def _faulted(self, project_id: str, filters: dict[str, FilterValue]) -> Iterator[_Served]:
        """Every record ever present that has data faults."""
        project = self._project(project_id)
        for key in self._select(project, range(project.next_key), filters):
            served = self._served(project, key)
            if served.faults:
                yield served

    def data_faults(
        self, project_id: str, **filters: FilterValue
    ) -> dict[str, tuple[DataFault, ...]]:
        """``image_id`` -> data faults, for every record ever present that has any.

        With shared images two records may have one ``image_id``: use
        :meth:`data_faults_by_natural_key`.
        """
        return {
            served.record["image_id"]: served.faults
            for served in self._faulted(project_id, filters)
        }

    def data_faults_by_natural_key(
        self, project_id: str, **filters: FilterValue
    ) -> dict[NaturalKey, tuple[DataFault, ...]]:
        """:func:`natural_key` of the record as served -> data faults, for every record ever
        present that has any (a field a fault dropped counts as ``None``)."""
        return {
            natural_key(served.record): served.faults
            for served in self._faulted(project_id, filters)
        }

    def quarantine_ids(self, project_id: str, **filters: FilterValue) -> set[str]:
        """``image_id`` of every record with a fault that loses data (must be quarantined)."""
        return {
            served.record["image_id"]
            for served in self._faulted(project_id, filters)
            if not all(fault.lossless for fault in served.faults)
        }

    def quarantine_keys(self, project_id: str, **filters: FilterValue) -> set[NaturalKey]:
        """:func:`natural_key` (as served) of every record that must be quarantined."""
        return {
            natural_key(served.record)
            for served in self._faulted(project_id, filters)
            if not all(fault.lossless for fault in served.faults)
        }

    def hidden_attributes(self, project_id: str, **filters: FilterValue) -> dict[str, Hidden]:
        """``image_id`` -> the attributes filters match but the API does not return.

        With shared images two records may have one ``image_id``: use
        :meth:`hidden_by_natural_key`.
        """
        project = self._project(project_id)
        generator = project.generator
        return {
            generator.image_id(key): generator.hidden(key)
            for key in self._select(project, None, filters)
        }

    def hidden_by_natural_key(
        self, project_id: str, **filters: FilterValue
    ) -> dict[NaturalKey, Hidden]:
        """:func:`natural_key` (as served) -> the attributes filters match but the API does
        not return, for every record served now."""
        project = self._project(project_id)
        generator = project.generator
        return {
            natural_key(self._served(project, key).record): generator.hidden(key)
            for key in self._select(project, None, filters)
        }

    def day_changes(self, project_id: str) -> list[DayChanges]:
        """What each day up to ``config.day`` changed in the project, by record key (the
        simulator's own record; :meth:`key_record` turns a key into its record)."""
        days = self._project(project_id).days
        return list(days.history) if days is not None else []

    def key_record(self, project_id: str, key: int) -> Record:
        """The record of ``key`` as served on ``config.day`` (its natural key is the same
        on every day: a rescan changes no field of it)."""
        project = self._project(project_id)
        generator = project.generator
        return generator.record(generator.core(key))
