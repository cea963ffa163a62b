"""Pages of one project -> Arrow batches -> the project's writer, plus the quarantine.

Runs in a worker thread (``asyncio.to_thread``): conversion is the CPU-heavy part and must
not block the event loop. Every record received ends up in exactly one place: a row of
the batch, or a quarantine entry naming the field and the reason. Typed pages (checked
while decoded, ``decoding.py``) go straight to Arrow; the others are checked here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any

import msgspec
import orjson

from connector.lake.writer import ProjectWriter
from connector.shape.batches import BatchBuilder, ColumnMismatch
from connector.shape.page import PageRecords
from connector.shape.records import RecordChecker, Rejected

__all__ = ["ProjectSink", "SinkCounts"]


@dataclass(slots=True)
class SinkCounts:
    """What the sink saw: records in, quarantined, and drift by field."""

    records_in: int = 0
    quarantined: int = 0
    unknown_enum_values: Counter[tuple[str, str]] = field(default_factory=Counter)
    extra_fields: Counter[str] = field(default_factory=Counter)
    quarantine_reasons: Counter[str] = field(default_factory=Counter)

    def for_report(self) -> dict[str, Any]:
        """What the sink saw of the records' shape, under the report's names."""
        enum_values: dict[str, dict[str, int]] = {}
        for (name, value), count in self.unknown_enum_values.items():
            enum_values.setdefault(name, {})[value] = count
        return {
            "quarantine_fields": dict(self.quarantine_reasons),
            "extra_fields": dict(self.extra_fields),
            "unknown_enum_values": enum_values,
        }


class ProjectSink:
    def __init__(
        self,
        writer: ProjectWriter,
        builder: BatchBuilder,
        checker: RecordChecker,
        *,
        project_id: str,
        run_id: str,
    ) -> None:
        self.writer = writer
        self.builder = builder
        self.checker = checker
        self.project_id = project_id
        self.run_id = run_id
        self.counts = SinkCounts()

    def write(self, items: Sequence[PageRecords]) -> None:
        """Convert and stage the records of several pages, a batch per run of typed or
        plain pages (in the order received)."""
        self.counts.records_in += sum(len(item.records) for item in items)
        for typed, run in groupby(items, key=lambda item: item.typed):
            pages = list(run)
            if not typed:
                self._write_plain(pages)
            elif not self._write_typed(pages):  # never expected: check them as objects
                self._write_plain(
                    [
                        replace(p, records=[msgspec.structs.asdict(r) for r in p.records])
                        for p in pages
                    ]
                )

    def _write_typed(self, items: Sequence[PageRecords]) -> bool:
        rows: list[tuple[Any, ...]] = []
        ingested: list[int] = []
        for item in items:
            rows += map(msgspec.structs.astuple, item.records)
            ingested += [item.fetched_at_ms] * len(item.records)
        if not rows:
            return True
        try:
            built = self.builder.build(
                rows, extras=None, ingested_at_ms=ingested, run_id=self.run_id, exact=True
            )
        except ColumnMismatch:
            return False
        self.counts.unknown_enum_values.update(built.unknown_enum_values)
        self.writer.write(built.batch)
        return True

    def _write_plain(self, items: Sequence[PageRecords]) -> None:
        rows: list[Any] = []
        ingested: list[int] = []
        for item in items:
            rows += item.records
            ingested += [item.fetched_at_ms] * len(item.records)
        if not rows:
            return
        if all(type(row) is dict for row in rows):
            try:
                self._stage(rows, ingested)
                return
            except ColumnMismatch:
                pass
        self._stage_checked(items)

    def _stage(self, rows: list[dict[str, Any]], ingested: list[int]) -> None:
        known = self.checker.known
        extras: list[str | None] | None = None
        if not known.issuperset(set().union(*rows)):
            extras = []
            for row in rows:
                extra = self.checker.extras(row)
                if extra is None:
                    extras.append(None)
                else:
                    self.counts.extra_fields.update(extra.keys())
                    extras.append(orjson.dumps(extra, option=orjson.OPT_SORT_KEYS).decode())
        built = self.builder.build(rows, extras=extras, ingested_at_ms=ingested, run_id=self.run_id)
        self.counts.unknown_enum_values.update(built.unknown_enum_values)
        self.writer.write(built.batch)

    def _stage_checked(self, items: Sequence[PageRecords]) -> None:
        """The slow path: check each record, quarantine the ones that cannot be stored."""
        good: list[dict[str, Any]] = []
        ingested: list[int] = []
        rejected: list[dict[str, object]] = []
        for item in items:
            for position, raw in enumerate(item.records, start=item.offset):
                checked = self.checker.check(raw)
                if isinstance(checked, Rejected):
                    rejected.append(self._entry(item, position, checked))
                else:
                    good.append(checked)
                    ingested.append(item.fetched_at_ms)
        if rejected:
            self.counts.quarantined += len(rejected)
            self.counts.quarantine_reasons.update(str(e["field"]) for e in rejected)
            self.writer.quarantine(rejected)
        if good:
            self._stage(good, ingested)

    def _entry(self, item: PageRecords, offset: int, rejected: Rejected) -> dict[str, object]:
        return {
            "project_id": self.project_id,
            "offset": offset,
            "request_id": item.request_id,
            "run_id": self.run_id,
            "field": rejected.field,
            "reason": rejected.reason,
            "record": rejected.raw,
        }
