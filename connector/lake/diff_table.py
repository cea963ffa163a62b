"""The Iceberg table as the diff reads it: each (project, date) partition a ``Side``.

``connector.diff`` reads the table the sync writes (``--format iceberg``), named as the
sync names it: the embedded catalog under the lake folder (``OUT/catalog.db``), or
``catalog``/``table`` for any catalog pyiceberg knows. Everything is read in the table's
**current** snapshot, pinned once, so a commit during the diff changes nothing of it.

- The dates there are: the partitions of the current snapshot's data files, and the
  partitions the connector's commits replaced with no rows (a project that read zero
  records: its partition of the day is empty, yet it is a snapshot, as its empty
  ``data.parquet`` is in the folder lake).
- A partition's query: the ``hss.project-queries`` / ``hss.query`` summary properties of
  the latest snapshot among the current one's ancestors whose ``hss.projects`` and
  ``hss.snapshot-date`` name that partition (the commit that last wrote it). When no such
  snapshot is left (expired, or the partition was written by another engine), the table
  property ``hss.query``, which a sync checks before it writes.
- The records: the data files ``Table.scan`` plans for the partition, one at a time, read
  64,000 rows at a time with their columns found by field id; a file with delete files (or
  whose rows are not all the partition's) is read through pyiceberg's own reader, which
  applies the deletes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.io.plugins import register_io_source

from connector.errors import ConfigError, OutputError
from connector.lake import iceberg
from connector.settings.config import check_table_settings
from connector.settings.names import setting
from connector.shape.schema import file_schema

if TYPE_CHECKING:
    from pyiceberg.table import Table as IcebergTable

__all__ = ["TableSide", "is_embedded_table", "open_snapshots"]

_EPOCH = date(1970, 1, 1)


def is_embedded_table(out: str) -> bool:
    """A local lake folder that holds the embedded catalog (``OUT/catalog.db``)."""
    return "://" not in out and (Path(out).expanduser() / iceberg.CATALOG_FILE).is_file()


@dataclass(frozen=True, slots=True)
class _Reader:
    table: IcebergTable
    snapshot_id: int | None
    name: str
    queries: dict[tuple[str, date], str]
    table_query: str | None


@dataclass(frozen=True, slots=True)
class TableSide:
    """A (project_id, snapshot_date) partition of the table's pinned snapshot."""

    reader: _Reader
    project_id: str
    day: date

    @property
    def where(self) -> str:
        return (
            f"{self.reader.name} (snapshot {self.reader.snapshot_id}) "
            f"project_id={self.project_id}/snapshot_date={self.day}"
        )

    def query(self) -> str | None:
        return self.reader.queries.get((self.project_id, self.day), self.reader.table_query)

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """The partition's records of ``columns``, one Arrow batch at a time."""
        from pyiceberg.expressions import AlwaysTrue, And, EqualTo
        from pyiceberg.io.pyarrow import ArrowScan, _read_all_delete_files

        reader = self.reader
        if reader.snapshot_id is None:
            return
        where = And(
            EqualTo("project_id", self.project_id),  # type: ignore[call-arg, arg-type]
            EqualTo("snapshot_date", self.day.isoformat()),  # type: ignore[call-arg, arg-type]
        )
        scan = reader.table.scan(
            row_filter=where, selected_fields=tuple(columns), snapshot_id=reader.snapshot_id
        )
        tasks = list(scan.plan_files())
        arrow = ArrowScan(reader.table.metadata, reader.table.io, scan.projection(), where)
        deletes = _read_all_delete_files(reader.table.io, tasks)
        types = {f.name: f.type for f in file_schema()}  # as the folder lake has them
        ids = {c: reader.table.schema().find_field(c).field_id for c in columns}
        for task in tasks:  # one file at a time
            if task.delete_files or task.residual != AlwaysTrue():
                batches = arrow._record_batches_from_scan_tasks_and_deletes([task], deletes)
            else:
                batches = _file_batches(reader.table, task.file.file_path, ids)
            for batch in batches:
                yield pa.RecordBatch.from_arrays(
                    [batch.column(c).cast(types[c]) for c in columns], names=columns
                )

    def chunks(self, columns: list[str]) -> Iterator[pl.LazyFrame]:
        for batch in self.batches(columns):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame.lazy()

    def scan(self, columns: list[str]) -> pl.LazyFrame:
        schema = _polars_schema(columns)

        def source(
            with_columns: list[str] | None,
            predicate: pl.Expr | None,
            n_rows: int | None,
            batch_size: int | None,
        ) -> Iterator[pl.DataFrame]:
            left = n_rows
            for batch in self.batches(columns):
                frame = pl.from_arrow(batch, schema_overrides=schema)
                assert isinstance(frame, pl.DataFrame)
                if left is not None:
                    frame = frame.head(left)
                    left -= frame.height
                if predicate is not None:
                    frame = frame.filter(predicate)
                if with_columns is not None:
                    frame = frame.select(with_columns)
                yield frame
                if left is not None and left <= 0:
                    return

        return register_io_source(
            source, schema=schema, explain_name="iceberg", explain_detail=self.where
        )


_BATCH_ROWS = 64_000


def _file_batches(table: IcebergTable, path: str, ids: dict[str, int]) -> Iterator[pa.RecordBatch]:
    """A data file without deletes whose rows are all the partition's, ``_BATCH_ROWS`` at a
    time, its columns found by field id (Iceberg's rule: a rename or a field added later
    is resolved, the latter read as null). pyiceberg's scan decodes each row group whole,
    and writes row groups of up to 1,048,576 rows: 1 GB for a snapshot of 1,000,000 images."""
    with table.io.new_input(path).open() as stream:
        parquet = pq.ParquetFile(stream, pre_buffer=False)
        by_id = {
            int(f.metadata[b"PARQUET:field_id"]): f.name
            for f in parquet.schema_arrow
            if f.metadata and b"PARQUET:field_id" in f.metadata
        }
        found = {c: by_id[i] for c, i in ids.items() if i in by_id}
        for batch in parquet.iter_batches(
            batch_size=_BATCH_ROWS, columns=sorted(set(found.values())), use_threads=False
        ):
            yield pa.RecordBatch.from_arrays(
                [batch.column(found[c]) if c in found else pa.nulls(batch.num_rows) for c in ids],
                names=list(ids),
            )


def _polars_schema(columns: list[str]) -> dict[str, pl.DataType]:
    empty = pl.from_arrow(file_schema().empty_table().select(columns))
    assert isinstance(empty, pl.DataFrame)
    return dict(empty.schema)


def open_snapshots(
    out: str, catalog: str | None, table: str | None, s3_endpoint: str | None
) -> tuple[str, dict[str, dict[date, TableSide]]]:
    """The table's name, and project id -> date -> partition in its current snapshot."""
    iceberg.require_pyiceberg()
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    check_table_settings("iceberg", catalog, table, out if catalog is None else "")
    if catalog is None and not is_embedded_table(out):
        raise ConfigError(
            f"no Iceberg catalog at {Path(out) / iceberg.CATALOG_FILE} (the embedded one a sync "
            f"with {setting('format')} iceberg creates); name another with {setting('catalog')}",
            where=f"lake {out}",
        )
    catalog_name, loaded = iceberg.load_named_catalog(out, catalog, s3_endpoint)
    identifier = iceberg.table_identifier(table)
    name = ".".join(identifier)
    try:
        opened = loaded.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError):
        raise ConfigError(
            f"catalog {catalog_name!r} has no table {name}", where=f"lake {out}"
        ) from None
    except Exception as exc:
        raise OutputError(
            f"cannot load the Iceberg table {name} from catalog {catalog_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    current = opened.current_snapshot()
    snapshot_id = current.snapshot_id if current is not None else None
    queries, committed = _commits(opened)
    reader = _Reader(opened, snapshot_id, name, queries, opened.properties.get(iceberg.TABLE_QUERY))
    found: dict[str, dict[date, TableSide]] = defaultdict(dict)
    partitions = set(committed)
    if snapshot_id is not None:
        for task in opened.scan(snapshot_id=snapshot_id).plan_files():
            partition = task.file.partition
            partitions.add((str(partition[0]), _as_date(partition[1])))
    for project_id, day in partitions:
        found[project_id][day] = TableSide(reader, project_id, day)
    return name, dict(found)


def _as_date(value: Any) -> date:
    """A date partition value: pyiceberg gives a ``date`` or the days since 1970."""
    return value if isinstance(value, date) else _EPOCH + timedelta(days=int(value))


def _commits(
    table: IcebergTable,
) -> tuple[dict[tuple[str, date], str], set[tuple[str, date]]]:
    """From the current snapshot's ancestors, newest first: each partition's query as the
    commit that last wrote it recorded it, and the partitions the connector committed."""
    queries: dict[tuple[str, date], str] = {}
    for snapshot in iceberg._ancestors(table):
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        try:
            day = date.fromisoformat(summary[iceberg.SNAPSHOT_DATE])
            projects = orjson.loads(summary.get(iceberg.PROJECTS, "[]"))
            own = orjson.loads(summary.get(iceberg.PROJECT_QUERIES, "{}"))
            query = summary[iceberg.QUERY]
        except (KeyError, ValueError, orjson.JSONDecodeError):
            continue
        for project in projects:
            queries.setdefault((project, day), own.get(project, query))
    return queries, set(queries)
