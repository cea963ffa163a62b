"""The diff case: ``hss-images diff`` against DuckDB SQL of the same diff (the manual's).

A lake of two snapshots of one project, ``images`` records each, is built once with
polars (columns computed, not generated a record at a time): the second day removes 2 %,
adds 3 % and changes 5 % of the first (a finished scan, new vulnerabilities), with images
on several hosts and nulls in key fields. Then, in child processes of their own (peak RSS
from ``wait4``):

    python -m benchmarks.diff connector LAKE FROM TO OUT   connector.diff(...).write(OUT)
    python -m benchmarks.diff duckdb LAKE FROM TO OUT      the manual's SQL, COPY ... TO OUT

Both outputs must hold the same rows (checked), or the case fails.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

__all__ = ["FROM", "TO", "build_lake", "check_same_rows", "duckdb_sql", "main"]

FROM, TO = date(2026, 12, 1), date(2026, 12, 2)
PROJECT = "bench"
_REMOVED, _ADDED, _CHANGED = 0.02, 0.03, 0.05


def _day(n: int, start: int, run_id: str) -> pl.DataFrame:
    """``n`` records numbered from ``start``: 1 in 8 images also on a second host, 1 in
    50 with a null digest."""
    frame = pl.DataFrame({"i": pl.int_range(start, start + n, eager=True, dtype=pl.Int64)})
    image = pl.col("i") - (pl.col("i") % 8 == 7).cast(pl.Int64)  # 1 in 8: the image before
    h = pl.col("i").hash(seed=1)
    ts = pl.lit(datetime(2026, 11, 1, tzinfo=UTC)).dt.cast_time_unit("ms")
    return frame.select(
        image_name=pl.format("repo/app-{}", image % 997),
        image_id=pl.format("{}", image.hash(seed=2)),
        image_digest=pl.when(image % 50 == 0)
        .then(pl.lit(None, pl.String))
        .otherwise(pl.format("sha256:{}", image.hash(seed=3))),
        image_version=pl.format("v{}", image % 13),
        local_image_type=pl.lit("swr_image"),
        scan_status=pl.lit("success"),
        image_size=(h % 2_000_000_000).cast(pl.Int64),
        latest_update_time=ts,
        latest_scan_time=ts,
        vul_num=(h % 200).cast(pl.Int64),
        unsafe_setting_num=(h % 7).cast(pl.Int64),
        malicious_file_num=pl.lit(0, pl.Int64),
        host_num=pl.lit(1, pl.Int64),
        container_num=(h % 5).cast(pl.Int64),
        component_num=(h % 600).cast(pl.Int64),
        scan_failed_desc=pl.lit(""),
        severity_level=pl.lit("Medium"),
        host_name=pl.format("node-{}", pl.col("i") % 5000),
        host_id=pl.format("host-{}", pl.col("i") % 5000 + (pl.col("i") % 8 == 7).cast(pl.Int64)),
        agent_id=pl.format("agent-{}", pl.col("i") % 5000),
        non_scan_reason=pl.lit(None, pl.String),
        extra_fields=pl.lit(None, pl.String),
        ingested_at=pl.lit(datetime.now(UTC)).dt.cast_time_unit("ms"),
        run_id=pl.lit(run_id),
    )


def build_lake(root: Path, images: int) -> None:
    """Two snapshots of ``images`` records each (the second: removed, added, changed)."""
    import pyarrow.parquet as pq

    from connector.lake.layout import Stamp
    from connector.shape.schema import file_schema

    schema = file_schema()
    first = _day(images, 0, "run-1")
    removed = int(images * _REMOVED)
    added = int(images * _ADDED)
    second = pl.concat([_day(images - removed, removed, "run-2"), _day(added, images, "run-2")])
    changed = pl.int_range(pl.len()) % round(1 / _CHANGED) == 3
    second = second.with_columns(
        vul_num=pl.when(changed).then(pl.col("vul_num") + 3).otherwise(pl.col("vul_num")),
        scan_status=pl.when(changed & (pl.int_range(pl.len()) % 40 == 3))
        .then(pl.lit("scanning"))
        .otherwise(pl.col("scan_status")),
    ).sample(fraction=1.0, shuffle=True, seed=5)
    for day, frame, run_id in ((FROM, first, "run-1"), (TO, second, "run-2")):
        stamp = Stamp(run_id, datetime.now(UTC), "{}")
        typed = (
            frame.to_arrow()
            .cast(schema)
            .replace_schema_metadata({**(schema.metadata or {}), **stamp.metadata()})
        )
        folder = root / f"project_id={PROJECT}" / f"snapshot_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(typed, folder / "data.parquet", compression="zstd", row_group_size=64_000)


def duckdb_sql(lake: str, from_date: date, to_date: date) -> str:
    """The manual's query (docs/changes.md), for this lake and these dates."""
    from tests.diff_sql import manual_sql  # the manual's text, verbatim

    return manual_sql(lake, from_date, to_date)


def _connector(lake: str, start: str, end: str, out: str) -> None:
    from connector.lake.diff import diff

    rows = diff(lake, from_date=start, to_date=end).write(out)
    print(rows)


def _duckdb(lake: str, start: str, end: str, out: str) -> None:
    import duckdb

    sql = duckdb_sql(lake, date.fromisoformat(start), date.fromisoformat(end))
    connection = duckdb.connect()
    connection.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    print(connection.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0])  # type: ignore[index]


def check_same_rows(ours: Path, theirs: Path) -> None:
    """The connector's rows and DuckDB's are the same (types as the connector writes them)."""
    a = pl.read_parquet(ours)
    b = pl.read_parquet(theirs)
    b = b.cast({column: a.schema[column] for column in a.columns})
    if a.columns != b.columns or not a.equals(b):
        raise RuntimeError(f"the diff's rows differ: {ours} ({a.height}), {theirs} ({b.height})")


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "build":
        build_lake(Path(rest[0]), int(rest[1]))
    elif command == "connector":
        _connector(*rest)
    elif command == "duckdb":
        _duckdb(*rest)
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
