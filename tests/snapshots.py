"""Write a snapshot into a lake as the connector lays it out, from plain rows: for the diff's
tests, which need lakes the simulator does not make (nulls in keys, other queries, a key
twice)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connector.lake.layout import Stamp
from connector.shape.schema import file_schema
from connector.simulator import RunningSimulator, natural_key

__all__ = ["day_record", "write_snapshot"]


def write_snapshot(
    root: Path,
    project_id: str,
    snapshot_date: date,
    rows: list[dict[str, Any]],
    *,
    query: str = "{}",
    run_id: str = "run-test",
) -> Path:
    """``root/project_id=P/snapshot_date=D/data.parquet``, stamped with ``query``; a row's
    missing fields are null, its run fields this run's."""
    schema = file_schema()
    stamp = Stamp(run_id, datetime.now(UTC), query)
    schema = schema.with_metadata({**(schema.metadata or {}), **stamp.metadata()})
    full = []
    for row in rows:
        record = {f.name: row.get(f.name) for f in schema}
        record["run_id"] = row.get("run_id") or run_id
        record["ingested_at"] = row.get("ingested_at") or stamp.started_at
        full.append(record)
    folder = root / f"project_id={project_id}" / f"snapshot_date={snapshot_date}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.parquet"
    pq.write_table(pa.Table.from_pylist(full, schema=schema), path)
    return path


def day_record(
    sim: RunningSimulator, projects: tuple[str, ...] | list[str]
) -> dict[str, dict[str, set[tuple[Any, ...]]]]:
    """The simulator's own record of its last day, per project: the natural keys of the
    records that appeared, were removed and were rescanned (it serves one day after 0)."""
    record: dict[str, dict[str, set[tuple[Any, ...]]]] = {}
    for project in projects:
        (changes,) = sim.inventory.day_changes(project)
        record[project] = {
            name: {
                natural_key(sim.inventory.key_record(project, key))
                for key in getattr(changes, name)
            }
            for name in ("appeared", "removed", "rescanned")
        }
    return record
