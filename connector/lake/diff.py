"""What changed between two snapshots of the lake: ``connector.diff(LAKE, ...)``.

It lives in ``lake`` because it reads nothing but the lake, through the same ``Lake`` and
``open_lake`` a run writes with (local folders, ``s3://`` with ``s3_endpoint``, any
fsspec filesystem): the partitions ``project_id=<id>/snapshot_date=<date>/data.parquet``,
the query stamped in each data file, and the quarantine beside OUT. Or the Iceberg table of
``--format iceberg`` (``diff_table``): each snapshot is then a ``Side``, the one thing the
two differ in; every rule and both passes are shared.

For each project it compares two snapshots, ``from`` and ``to`` (by default the latest
snapshot and the one before it), matched by the schema's natural key
(``schemas/image_local_info.json``: ``image_id``, ``image_digest``, ``image_name``,
``image_version``, ``host_id``, ``agent_id``), a null in the key matched as a value, as
the writer removes duplicates. One row per record that **appeared**, was **removed** or
**changed**; "changed" means any field of the schema differs (null equals null), the
natural key aside, except the two the connector adds about the run itself (``run_id``,
``ingested_at``) and the partition columns. ``extra_fields`` (what the API sent beyond the
schema) is the record's own, so it counts.

The honest edges: a project with a snapshot on one side only is listed as such in
``Diff.one_sided`` (not as its images removed or appeared); a date without a snapshot is a
``ConfigError`` listing the dates there are; two snapshots stamped with different queries
are refused (``ConfigError``), since their difference would be the filter's; quarantine
files of either snapshot are named in ``Diff.quarantine`` (those records are neither in nor
out). A snapshot holding a natural key twice is not one this connector published: refused.

It runs in two passes per project (``_pair_changes``): ``diff()`` reads each snapshot as
two hashes a record and finds the records that differ; the rows are a polars ``LazyFrame``
that reads only those in full, run by the streaming engine (``Diff.write`` streams them
into Parquet).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from connector.errors import ConfigError, DataLossError
from connector.lake.iceberg import CATALOG_FILE
from connector.lake.layout import DATA_NAME, Lake, describe_query, output_errors
from connector.lake.writer import encode_segment, open_lake
from connector.shape.schema import load_spec

__all__ = [
    "CHANGES",
    "RUN_FIELDS",
    "WATCHED",
    "Diff",
    "FileSide",
    "OneSided",
    "ProjectPair",
    "QuarantineFile",
    "Side",
    "change_counts",
    "compared_fields",
    "diff",
    "output_schema",
]

Change = Literal["appeared", "removed", "changed"]
CHANGES: tuple[Change, ...] = ("appeared", "removed", "changed")
RUN_FIELDS = frozenset({"run_id", "ingested_at"})
"""What the connector adds about the run itself: never a change of the record."""
WATCHED = (
    "scan_status",
    "severity_level",
    "vul_num",
    "malicious_file_num",
    "unsafe_setting_num",
    "latest_scan_time",
)
"""Fields whose values on both sides are in every row (``vul_num_from``, ``vul_num_to``)."""

_PARTITION = re.compile(r"project_id=([^/]+)/snapshot_date=(\d{4}-\d{2}-\d{2})/" + DATA_NAME)
_IN_FROM, _IN_TO = "__in_from", "__in_to"
_KEY_HASH, _ROW_HASH = "__key_hash", "__row_hash"


def compared_fields() -> tuple[str, ...]:
    """The fields whose difference makes a record "changed", in schema order."""
    spec = load_spec()
    key = set(spec.natural_key)
    names = [f.name for f in spec.file_fields]
    return tuple(n for n in names if n not in key and n not in RUN_FIELDS)


def output_schema() -> dict[str, pl.DataType]:
    """The columns of the diff's rows, in order, with their polars types."""
    spec = load_spec()
    arrow = {f.name: f.arrow.type for f in spec.file_fields}
    types = {
        "project_id": pl.String(),
        "from_date": pl.Date(),
        "to_date": pl.Date(),
        "change": pl.String(),
    }
    for name in spec.natural_key:
        types[name] = pl.String()
    types["changed_fields"] = pl.List(pl.String())
    for name in WATCHED:
        dtype = _polars_type(arrow[name])
        types[f"{name}_from"] = dtype
        types[f"{name}_to"] = dtype
    return types


def _polars_type(arrow_type: pa.DataType) -> pl.DataType:
    series = pl.from_arrow(pa.array([], type=arrow_type))
    assert isinstance(series, pl.Series)
    return series.dtype


@dataclass(frozen=True, slots=True)
class ProjectPair:
    """One project's two snapshots, compared."""

    project_id: str
    from_date: date
    to_date: date
    from_file: str
    """Where the ``from`` snapshot is: its data file, or the Iceberg table's partition
    (``hss.image_local_info (snapshot <id>) project_id=<id>/snapshot_date=<date>``)."""
    to_file: str


@dataclass(frozen=True, slots=True)
class OneSided:
    """A project not compared: it has a snapshot on one side only (or on neither)."""

    project_id: str
    from_date: date | None
    """The snapshot it has on the ``from`` side; ``None``: none there."""
    to_date: date | None
    dates: tuple[date, ...]
    """Every snapshot of the project in the lake."""

    def describe(self) -> str:
        if self.from_date is None and self.to_date is None:
            have = ", ".join(d.isoformat() for d in self.dates) or "none"
            return f"no snapshot on either date (it has: {have})"
        if self.to_date is None:
            return f"only in {self.from_date} (no snapshot to compare it with)"
        if self.from_date is None:
            return f"only in {self.to_date} (no earlier snapshot to compare it with)"
        return "compared"  # pragma: no cover


@dataclass(frozen=True, slots=True)
class QuarantineFile:
    """Records of a compared snapshot that failed validation: neither in nor out."""

    project_id: str
    snapshot_date: date
    path: str
    records: int


@dataclass(frozen=True, slots=True)
class Diff:
    """The changes between two snapshots per project, and what could not be compared."""

    lake: str
    changes: pl.LazyFrame
    """One row per appeared, removed or changed record (see ``output_schema``)."""
    pairs: tuple[ProjectPair, ...]
    one_sided: tuple[OneSided, ...]
    quarantine: tuple[QuarantineFile, ...]

    def table(self) -> pa.Table:
        """The rows as an Arrow table (collected with the streaming engine)."""
        with _computing(self.lake):
            return self.changes.collect(engine="streaming").to_arrow()

    def write(self, path: str | os.PathLike[str]) -> int:
        """Stream the rows into one Parquet file at ``path``, put in place whole (a
        temporary file renamed); the number of rows written."""
        target = Path(path).expanduser()
        partial = target.with_name(f".{target.name}.partial")
        with output_errors(f"writing the diff to {target}"):
            if not target.parent.is_dir():
                raise ConfigError(
                    f"the folder {target.parent} does not exist", where=f"output {target}"
                )
            try:
                with _computing(self.lake):
                    self.changes.sink_parquet(partial, compression="zstd", engine="streaming")
                rows = pl.scan_parquet(partial).select(pl.len()).collect().item()
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        return int(rows)

    def counts(self) -> dict[str, Any]:
        """:func:`change_counts` of the rows, with each project's dates and the projects
        that could not be compared: JSON-able (an Airflow asset event's ``extra``)."""
        with _computing(self.lake):
            counted = change_counts(self.changes)
        for pair in self.pairs:
            entry = counted["projects"].setdefault(pair.project_id, _zero())
            entry["from_date"] = pair.from_date.isoformat()
            entry["to_date"] = pair.to_date.isoformat()
        counted["one_sided"] = {
            side.project_id: {
                "from_date": side.from_date.isoformat() if side.from_date else None,
                "to_date": side.to_date.isoformat() if side.to_date else None,
            }
            for side in self.one_sided
        }
        counted["quarantined"] = {
            f"{q.project_id}/{q.snapshot_date.isoformat()}": q.records for q in self.quarantine
        }
        return counted

    def summary(self, top: int = 5) -> str:
        """Per project: its dates, counts by change and the ``top`` largest rises in
        vulnerabilities; the projects not compared and the quarantine. For a terminal or
        an Airflow log."""
        rise = (pl.col("vul_num_to") - pl.col("vul_num_from").fill_null(0)).alias("rise")
        rises = (
            self.changes.filter(pl.col("change") == "changed")
            .select(
                "project_id",
                "image_name",
                "image_version",
                "host_id",
                "vul_num_from",
                "vul_num_to",
                "severity_level_to",
                rise,
            )
            .filter(pl.col("rise") > 0)
            .sort(["project_id", "rise"], descending=[False, True], maintain_order=True)
            .group_by("project_id", maintain_order=True)
            .head(top)
        )
        counted = self.changes.group_by("project_id", "change").agg(pl.len().alias("n"))
        with _computing(self.lake):
            counts_frame, rises_frame = pl.collect_all([counted, rises], engine="streaming")
        counts: dict[str, dict[str, int]] = defaultdict(_zero)
        for project_id, change, n in counts_frame.iter_rows():
            counts[project_id][change] = n
        lines = [f"hss-images diff {self.lake}: {len(self.pairs)} project(s) compared"]
        total = _zero()
        for pair in self.pairs:
            found = counts[pair.project_id]
            for change in CHANGES:
                total[change] += found[change]
            lines.append(
                f"project {pair.project_id}, {pair.from_date} -> {pair.to_date}: " + _said(found)
            )
            mine = rises_frame.filter(pl.col("project_id") == pair.project_id)
            if mine.height:
                lines.append("  largest rises in vulnerabilities:")
            for row in mine.iter_rows(named=True):
                severity = f", {row['severity_level_to']}" if row["severity_level_to"] else ""
                lines.append(
                    f"    +{row['rise']:<5} {row['image_name']}:{row['image_version']} on host "
                    f"{row['host_id']}: {row['vul_num_from']} -> {row['vul_num_to']}{severity}"
                )
        for side in self.one_sided:
            lines.append(f"project {side.project_id}: not compared, {side.describe()}")
        for q in self.quarantine:
            lines.append(
                f"quarantine: {q.records} record(s) of project {q.project_id} on "
                f"{q.snapshot_date} failed validation and are neither in nor out of this "
                f"diff: {q.path}"
            )
        if len(self.pairs) > 1:
            lines.append(f"total: {_said(total)}")
        return "\n".join(lines)


def _said(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[change]:,} {change}" for change in CHANGES)


@contextlib.contextmanager
def _computing(lake: str) -> Iterator[None]:
    """polars' own errors of a diff, as the connector's: a natural key twice in one
    snapshot (the join's 1:1 check), a file that cannot be read."""
    try:
        yield
    except pl.exceptions.ComputeError as exc:
        if "1:1" not in str(exc):
            raise
        raise DataLossError(
            f"a snapshot in {lake} holds one natural key twice, so its records cannot be "
            "matched one to one; the connector never publishes such a snapshot (it removes "
            "duplicates), so this one was written by something else"
        ) from exc


def _zero() -> dict[str, Any]:
    return dict.fromkeys(CHANGES, 0)


def change_counts(changes: pl.LazyFrame | pl.DataFrame | pa.Table) -> dict[str, Any]:
    """Counts per change, per project and in total, as a JSON-able dict::

    {"total": {"appeared": 3, "removed": 1, "changed": 7},
     "projects": {"p1": {"appeared": 3, "removed": 1, "changed": 7}}}
    """
    if isinstance(changes, pa.Table):
        frame = pl.from_arrow(changes)
        assert isinstance(frame, pl.DataFrame)
        changes = frame
    counted = (
        changes.lazy()
        .group_by("project_id", "change")
        .agg(pl.len().alias("n"))
        .collect(engine="streaming")
    )
    total = _zero()
    projects: dict[str, dict[str, Any]] = defaultdict(_zero)
    for project_id, change, n in counted.iter_rows():
        projects[project_id][change] = n
        total[change] += n
    return {"total": total, "projects": dict(sorted(projects.items()))}


# -- the snapshots: a data file of the folder lake, a partition of the table ---------------


class Side(Protocol):
    """One project's snapshot of one date, as the diff reads it: the folder lake's data
    file (``FileSide``) or a partition of an Iceberg table (``diff_table.TableSide``)."""

    @property
    def where(self) -> str:
        """Where the snapshot is, for ``ProjectPair`` and messages."""
        ...

    def query(self) -> str | None:
        """The query the snapshot is the inventory of; ``None``: not known."""
        ...

    def chunks(self, columns: list[str]) -> Iterator[pl.LazyFrame]:
        """The snapshot's records one bounded chunk after the other (pass 1)."""
        ...

    def scan(self, columns: list[str]) -> pl.LazyFrame:
        """The snapshot's records as one lazy, streaming frame (pass 2)."""
        ...


@dataclass(frozen=True, slots=True)
class FileSide:
    """A snapshot of the folder lake: ``project_id=<id>/snapshot_date=<date>/data.parquet``."""

    lake: Lake
    path: str

    @property
    def where(self) -> str:
        return self.path

    def query(self) -> str | None:
        stamp = self.lake.read_stamp(self.path)
        return stamp.query if stamp else None

    def scan(self, columns: list[str]) -> pl.LazyFrame:
        if self.lake.local:
            return pl.scan_parquet(self.path).select(columns)
        dataset = ds.dataset(self.path, format="parquet", filesystem=self.lake.fs)
        return pl.scan_pyarrow_dataset(dataset).select(columns)

    def chunks(self, columns: list[str]) -> Iterator[pl.LazyFrame]:
        """The file's row groups one after the other, each as a LazyFrame of ``columns``.

        polars' streaming reader decodes several row groups ahead on every core (0.3 GB for
        one snapshot of 1,000,000 images); one at a time, a pass over a snapshot holds one
        row group (64,000 records as the connector writes them) besides what it keeps.
        """
        lake, path = self.lake, self.path
        if lake.local:
            sizes = [group.num_rows for group in _row_group_meta(pq.read_metadata(path))]
            offset = 0
            for size in sizes:
                yield pl.scan_parquet(path).slice(offset, size).select(columns)
                offset += size
            return
        with lake.fs.open_input_file(path) as file:
            parquet = pq.ParquetFile(file)
            for index in range(parquet.num_row_groups):
                table = parquet.read_row_group(index, columns=columns)
                frame = pl.from_arrow(table)
                assert isinstance(frame, pl.DataFrame)
                yield frame.lazy()


def _row_group_meta(metadata: pq.FileMetaData) -> Iterator[pq.RowGroupMetaData]:
    for index in range(metadata.num_row_groups):
        yield metadata.row_group(index)


# -- finding the snapshots -----------------------------------------------------------------


Snapshots = dict[str, dict[date, Side]]
"""project id -> snapshot date -> the snapshot."""


def _snapshots(lake: Lake, out: str) -> Snapshots:
    """project id -> snapshot date -> data file, from one listing of the lake."""
    selector = pafs.FileSelector(lake.root, recursive=True, allow_not_found=True)
    with output_errors(f"listing the lake {out}"):
        infos = lake.fs.get_file_info(selector)
    found: Snapshots = defaultdict(dict)
    prefix = lake.root.rstrip("/") + "/"
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.startswith(prefix):
            continue
        match = _PARTITION.fullmatch(info.path[len(prefix) :])
        if match is None:
            continue
        try:
            day = date.fromisoformat(match[2])
        except ValueError:
            continue
        found[unquote(match[1])][day] = FileSide(lake, info.path)
    return dict(found)


def _dates(dates: Iterable[date]) -> str:
    listed = sorted(dates)
    return ", ".join(d.isoformat() for d in listed) if listed else "none"


@dataclass(frozen=True, slots=True)
class _Holder:
    """What holds the snapshots, as the messages name it."""

    out: str
    dates: str = "the lake's snapshot dates"
    empty: str = f"(no project_id=<id>/snapshot_date=<date>/{DATA_NAME})"
    stamped: str = "stamped in their Parquet files, see lake.json"


def _pick(
    holder: _Holder,
    snapshots: Snapshots,
    from_date: date | None,
    to_date: date | None,
    project_ids: Sequence[str] | None,
) -> tuple[list[tuple[ProjectPair, tuple[Side, Side]]], list[OneSided]]:
    out = holder.out
    if from_date is not None and to_date is not None and from_date >= to_date:
        raise ConfigError(
            f"the date to compare from, {from_date}, is not before the date to compare to, "
            f"{to_date}: a diff reads from an earlier snapshot to a later one",
            where=f"lake {out}",
        )
    every_date = {d for dates in snapshots.values() for d in dates}
    if not snapshots:
        raise ConfigError(f"{out} holds no snapshot {holder.empty}", where=f"lake {out}")
    for side, wanted in (("from", from_date), ("to", to_date)):
        if wanted is not None and wanted not in every_date:
            raise ConfigError(
                f"no project has a snapshot on {wanted} (the date to compare {side}); "
                f"{holder.dates} are {_dates(every_date)}",
                where=f"lake {out}",
            )
    chosen = list(project_ids) if project_ids else sorted(snapshots)
    if project_ids:
        by_segment = {encode_segment(p): p for p in snapshots}
        unknown = [p for p in chosen if p not in snapshots and encode_segment(p) not in by_segment]
        if unknown:
            raise ConfigError(
                f"no snapshot of project {', '.join(unknown)}; its projects are "
                f"{', '.join(sorted(snapshots))}",
                where=f"lake {out}",
            )
    pairs: list[tuple[ProjectPair, tuple[Side, Side]]] = []
    one_sided: list[OneSided] = []
    for project_id in dict.fromkeys(chosen):
        dates = snapshots.get(project_id) or snapshots[_decoded(project_id, snapshots)]
        older = sorted(dates)
        to = to_date if to_date is not None else older[-1]
        if from_date is not None:
            start: date | None = from_date
        else:
            before = [d for d in older if d < to]
            start = before[-1] if before else None
        has_from = start is not None and start in dates
        has_to = to in dates and (start is None or start < to)
        if project_ids and to_date is not None and to not in dates and not has_from:
            raise ConfigError(
                f"project {project_id} has no snapshot on {to} (the date to compare to) nor "
                f"on the date to compare from; its snapshot dates are {_dates(dates)}",
                where=f"lake {out}",
            )
        if has_from and has_to:
            assert start is not None
            sides = (dates[start], dates[to])
            pair = ProjectPair(project_id, start, to, sides[0].where, sides[1].where)
            pairs.append((pair, sides))
        else:
            one_sided.append(
                OneSided(
                    project_id,
                    start if has_from else None,
                    to if has_to else None,
                    tuple(older),
                )
            )
    return pairs, one_sided


def _decoded(project_id: str, snapshots: Snapshots) -> str:
    for name in snapshots:
        if encode_segment(project_id) == encode_segment(name):
            return name
    raise KeyError(project_id)  # pragma: no cover: checked before


def _check_queries(holder: _Holder, pairs: Sequence[tuple[ProjectPair, tuple[Side, Side]]]) -> None:
    for pair, sides in pairs:
        queries = (sides[0].query(), sides[1].query())
        if None in queries or queries[0] == queries[1]:
            continue
        assert queries[0] is not None and queries[1] is not None
        raise ConfigError(
            f"project {pair.project_id}: the snapshot of {pair.from_date} is the inventory of "
            f"{describe_query(queries[0])}, the one of {pair.to_date} of "
            f"{describe_query(queries[1])} ({holder.stamped}); their difference would be "
            "the query's, not the inventory's. Compare snapshots of one query",
            where=f"lake {holder.out}",
        )


def _quarantine(lake: Lake, pairs: Sequence[ProjectPair]) -> list[QuarantineFile]:
    found: list[QuarantineFile] = []
    for pair in pairs:
        for day in (pair.from_date, pair.to_date):
            partition = f"project_id={encode_segment(pair.project_id)}/snapshot_date={day}"
            path = lake.quarantine_file(partition)
            raw = lake.read_bytes(path)
            if raw:
                found.append(QuarantineFile(pair.project_id, day, path, raw.count(b"\n")))
    return found


# -- the rows ------------------------------------------------------------------------------


def _pair_changes(source: str, pair: ProjectPair, sides: tuple[Side, Side]) -> pl.LazyFrame:
    """The rows of one project, in two passes over each snapshot.

    1. Now, a row group at a time: each side as two hashes per record (its natural
       key's, its whole record's), joined on the key's hash: the keys on one side only,
       or whose records hash differently, are flagged. Sixteen bytes a record, whatever
       the records hold; run to its end before pass 2 starts.
    2. Lazily (the rows' LazyFrame, streaming): the flagged records only, joined on the
       natural key itself (nulls equal): the rows, exact. A collision of key hashes flags
       both records (their record hashes differ), so pass 2 tells them apart; only a
       changed record whose whole-record hash equals its earlier one's could pass unseen
       (one chance in 2**64 per record).
    """
    key = list(load_spec().natural_key)
    compared = compared_fields()
    columns = key + list(compared)
    key_hash = pl.struct(key).hash().alias(_KEY_HASH)

    def hashes(snapshot: Side, suffix: str) -> pl.LazyFrame:
        row_hash = pl.struct(columns).hash().alias(f"{_ROW_HASH}{suffix}")
        parts = [group.select(key_hash, row_hash).collect() for group in snapshot.chunks(columns)]
        return (
            pl.concat(parts).lazy()
            if parts
            else pl.LazyFrame(schema={_KEY_HASH: pl.UInt64, row_hash.meta.output_name(): pl.UInt64})
        )

    before, after = f"{_ROW_HASH}_from", f"{_ROW_HASH}_to"
    with _computing(source), output_errors(f"reading project {pair.project_id}'s snapshots"):
        flagged = (
            hashes(sides[0], "_from")
            .join(hashes(sides[1], "_to"), on=_KEY_HASH, how="full", coalesce=True)
            .filter(
                pl.col(before).is_null()
                | pl.col(after).is_null()
                | (pl.col(before) != pl.col(after))
            )
            .select(_KEY_HASH)
            .collect()
        )
    wanted = flagged[_KEY_HASH].implode()

    def side(snapshot: Side, suffix: str, marker: str) -> pl.LazyFrame:
        frame = snapshot.scan(columns).filter(key_hash.is_in(wanted))
        return frame.select(
            *key,
            *(pl.col(c).alias(f"{c}{suffix}") for c in compared),
            pl.lit(True).alias(marker),
        )

    joined = side(sides[0], "_from", _IN_FROM).join(
        side(sides[1], "_to", _IN_TO),
        on=key,
        how="full",
        nulls_equal=True,
        coalesce=True,
        validate="1:1",
    )
    differs = [~pl.col(f"{c}_from").eq_missing(pl.col(f"{c}_to")) for c in compared]
    change = (
        pl.when(pl.col(_IN_FROM).is_null())
        .then(pl.lit("appeared"))
        .when(pl.col(_IN_TO).is_null())
        .then(pl.lit("removed"))
        .when(pl.any_horizontal(differs))
        .then(pl.lit("changed"))
    )
    names = pl.concat_list(
        [
            pl.when(d).then(pl.lit(c)).otherwise(pl.lit(None, pl.String))
            for c, d in zip(compared, differs, strict=True)
        ]
    ).list.drop_nulls()
    changed_fields = (
        pl.when(pl.col("change") == "changed").then(names).otherwise(pl.lit([], pl.List(pl.String)))
    )
    watched = [pl.col(f"{c}{s}") for c in WATCHED for s in ("_from", "_to")]
    return (
        joined.with_columns(change.alias("change"))
        .filter(pl.col("change").is_not_null())
        .select(
            pl.lit(pair.project_id, pl.String).alias("project_id"),
            pl.lit(pair.from_date, pl.Date).alias("from_date"),
            pl.lit(pair.to_date, pl.Date).alias("to_date"),
            "change",
            *key,
            changed_fields.alias("changed_fields"),
            *watched,
        )
    )


def _empty() -> pl.LazyFrame:
    return pl.LazyFrame(schema=output_schema())


def diff(
    lake: str | os.PathLike[str],
    *,
    from_date: date | str | None = None,
    to_date: date | str | None = None,
    project_ids: Sequence[str] | None = None,
    s3_endpoint: str | None = None,
    catalog: str | None = None,
    table: str | None = None,
) -> Diff:
    """The changes between two snapshots of each project of ``lake`` (a folder, or
    ``s3://bucket/prefix`` with ``s3_endpoint`` or ``AWS_ENDPOINT_URL``).

    ``lake`` may hold the Iceberg table of ``--format iceberg`` instead (its embedded
    catalog, ``catalog.db``); ``catalog`` names any catalog pyiceberg knows and ``table``
    the table's identifier (default ``hss.image_local_info``), as for the sync. A snapshot
    is then a (project_id, snapshot_date) partition of the table's current snapshot.

    ``to_date``: default each project's latest snapshot; ``from_date``: default the one
    before ``to_date``. ``project_ids``: default every project in the lake. The rows are
    read lazily: ``Diff.changes`` (a polars LazyFrame), ``Diff.table()`` (Arrow),
    ``Diff.write(path)`` (Parquet), ``Diff.counts()`` (JSON-able counts).
    """
    lake = os.fspath(lake)
    start = _as_date(from_date, "from")
    end = _as_date(to_date, "to")
    opened = open_lake(lake, s3_endpoint)
    snapshots: Snapshots
    if catalog is not None or table is not None or _holds_table(opened):
        from connector.lake.diff_table import open_snapshots

        name, found = open_snapshots(lake, catalog, table, s3_endpoint)
        snapshots = {p: dict(dates) for p, dates in found.items()}
        holder = _Holder(
            lake,
            dates=f"the Iceberg table {name}'s snapshot dates",
            empty=f"(the Iceberg table {name} has no partition)",
            stamped=f"as the commits that wrote them recorded them in the table {name}",
        )
    else:
        if opened.local and not Path(opened.root).is_dir():
            raise ConfigError(f"{opened.root} is not a folder", where=f"lake {lake}")
        snapshots = _snapshots(opened, lake)
        holder = _Holder(lake)
    chosen, one_sided = _pick(holder, snapshots, start, end, project_ids)
    _check_queries(holder, chosen)
    pairs = [pair for pair, _ in chosen]
    quarantine = _quarantine(opened, pairs)
    frames = [_pair_changes(lake, pair, sides) for pair, sides in chosen]
    key = list(load_spec().natural_key)
    changes = (
        pl.concat(frames, how="vertical").sort(
            ["project_id", "change", *key], nulls_last=False, maintain_order=True
        )
        if frames
        else _empty()
    )
    return Diff(lake, changes, tuple(pairs), tuple(one_sided), tuple(quarantine))


def _holds_table(lake: Lake) -> bool:
    """The lake folder holds the embedded Iceberg catalog of ``--format iceberg``."""
    return lake.local and Path(lake.root, CATALOG_FILE).is_file()


def _as_date(value: date | str | None, side: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not a date (YYYY-MM-DD)", where=f"the date to compare {side}"
        ) from None
