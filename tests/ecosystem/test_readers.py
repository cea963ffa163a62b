"""Every reader the manual names reads OUT as a directory, with a quarantine and a run staging.

The lake: two projects with numeric-looking ids (one with a leading zero) published with
quarantined records, and a third project's run in progress (stopped with SIGSTOP once its
staging holds a file). Each reader is called the way the manual's "Reading it" shows it, on
the directory itself, and must give ``project_id`` as a string equal to the id and
``snapshot_date`` as a date; the naive reads the manual warns about are checked to go wrong
the way it says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from connector import Filters
from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread
from tests.commands import spawn_cli
from tests.integration.helpers import TOKEN

PUBLISHED = ("0123456789", "42")
"""Ids that look like numbers: readers that infer partition types make them integers."""
IN_PROGRESS = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
DUCKDB_READ = (
    "read_parquet('OUT/**/*.parquet', hive_partitioning = true, "
    "hive_types = {'project_id': VARCHAR, 'snapshot_date': DATE})"
)
"""The manual's DuckDB read, with OUT for the lake's folder."""


@dataclass(frozen=True)
class Lake:
    out: Path
    rows: dict[str, int]
    """Rows per published project."""
    snapshot_date: date

    def check_state_is_present(self) -> None:
        """The quarantine and a run's staging exist right now, beside the data; OUT itself
        holds nothing but the data files, so a reader of OUT has nothing to leave out."""
        state = Path(f"{self.out}.connector")
        assert list(state.glob("quarantine/project_id=*/snapshot_date=*/quarantine.jsonl"))
        assert [p for p in state.glob("staging/*/*") if p.stat().st_size > 0]
        files = [p.relative_to(self.out).as_posix() for p in self.out.rglob("*") if p.is_file()]
        assert sorted(files) == [
            f"project_id={p}/snapshot_date={self.snapshot_date}/data.parquet"
            for p in sorted(PUBLISHED)
        ]


def _staged_files(out: Path) -> list[Path]:
    """Non-empty staged files of a run in progress, wherever a version of the connector puts them."""
    found = list(Path(f"{out}.connector").glob("staging/*/*")) + list(out.glob("_staging/*/*"))
    return [p for p in found if p.stat().st_size > 0]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    out = tmp_path_factory.mktemp("readers") / "lake"
    faults = FaultConfig(fraction_rate=0.02)
    sim_config = SimulatorConfig(
        seed=91,
        records=3_000,
        project_records={"42": 1_200, IN_PROGRESS: 20_000},
        tokens=frozenset({TOKEN}),
        faults=faults,
    )
    with simulator_in_thread(sim_config) as sim:
        args = ["sync", "--out", str(out), "--endpoint", sim.base_url, "--progress", "off"]
        published = spawn_cli(
            *args, "--rate", "0", *(a for p in PUBLISHED for a in ("--project-id", p)),
            env={"HSS_AUTH_TOKEN": TOKEN},
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        query = dict(Filters().params())  # what a run without filter flags asks for
        rows = {
            p: sim.inventory.total(p, **query) - len(sim.inventory.quarantine_ids(p, **query))
            for p in PUBLISHED
        }
        [snapshot] = {p.name for p in out.glob("project_id=*/snapshot_date=*")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("HSS_")}
        env["HSS_AUTH_TOKEN"] = TOKEN
        command = [sys.executable, "-m", "connector.cli", *args, "--rate", "10"]
        running = subprocess.Popen(
            [*command, "--project-id", IN_PROGRESS],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while not _staged_files(out):
                assert running.poll() is None, "the run ended before it staged anything"
                assert time.monotonic() < deadline, "the run staged nothing in 60 s"
                time.sleep(0.02)
            running.send_signal(signal.SIGSTOP)  # still in progress, its staging in place
            yield Lake(out, rows, date.fromisoformat(snapshot.split("=")[1]))
        finally:
            running.kill()
            running.wait(timeout=30)


def test_polars_reads_the_directory(lake: Lake) -> None:
    lake.check_state_is_present()
    out = str(lake.out)
    partitions = {"project_id": pl.String, "snapshot_date": pl.Date}
    images = pl.scan_parquet(out, hive_partitioning=True, hive_schema=partitions)
    frame = images.group_by("project_id", "snapshot_date").len().collect()
    assert frame.schema["project_id"] == pl.String
    assert frame.schema["snapshot_date"] == pl.Date
    assert set(frame["snapshot_date"]) == {lake.snapshot_date}
    assert dict(frame.select("project_id", "len").rows()) == lake.rows


def test_polars_naive_reads_go_wrong_as_the_manual_says(lake: Lake) -> None:
    """Without a hive schema the ids become integers (the leading zero lost); with a glob
    and no ``hive_partitioning`` the partition columns are silently absent."""
    inferred = pl.scan_parquet(str(lake.out), hive_partitioning=True).collect_schema()
    assert inferred["project_id"] == pl.Int64
    globbed = pl.scan_parquet(f"{lake.out}/**/*.parquet").collect_schema()
    assert "project_id" not in globbed and "snapshot_date" not in globbed


def test_pyarrow_dataset_reads_the_directory(lake: Lake) -> None:
    lake.check_state_is_present()
    out = str(lake.out)
    partitions = pa.schema([("project_id", pa.string()), ("snapshot_date", pa.date32())])
    partitioning = ds.partitioning(partitions, flavor="hive")
    images = ds.dataset(out, format="parquet", partitioning=partitioning)
    table = images.to_table(columns=["project_id", "snapshot_date"])
    assert table.schema.field("project_id").type == pa.string()
    assert table.schema.field("snapshot_date").type == pa.date32()
    assert set(table["snapshot_date"].to_pylist()) == {lake.snapshot_date}
    counts = table.group_by("project_id").aggregate([([], "count_all")])
    assert {r["project_id"]: r["count_all"] for r in counts.to_pylist()} == lake.rows


def test_pyarrow_naive_read_goes_wrong_as_the_manual_says(lake: Lake) -> None:
    """``partitioning="hive"`` infers: the ids become integers, the date a string."""
    schema = ds.dataset(str(lake.out), format="parquet", partitioning="hive").schema
    assert pa.types.is_integer(schema.field("project_id").type)
    assert schema.field("snapshot_date").type == pa.string()


def test_duckdb_reads_the_glob(lake: Lake) -> None:
    lake.check_state_is_present()
    read = DUCKDB_READ.replace("OUT", str(lake.out))
    rows = duckdb.sql(
        "select project_id, count(*), any_value(typeof(project_id)), "
        f"any_value(typeof(snapshot_date)), min(snapshot_date) from {read} group by all"
    ).fetchall()
    assert {r[0]: r[1] for r in rows} == lake.rows
    assert {r[2:] for r in rows} == {("VARCHAR", "DATE", lake.snapshot_date)}


def test_duckdb_naive_read_goes_wrong_as_the_manual_says(lake: Lake) -> None:
    """Without ``hive_types`` a folder whose ids are all numbers gives them as BIGINT."""
    [(kind,)] = duckdb.sql(
        "select distinct typeof(project_id) "
        f"from read_parquet('{lake.out}/project_id=42/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert kind == "BIGINT"


@pytest.mark.spark
def test_spark_reads_the_directory(lake: Lake, spark: Any) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    lake.check_state_is_present()
    out = str(lake.out)
    naive = spark.read.parquet(out)  # before the setting below: partition types inferred
    assert isinstance(naive.schema["project_id"].dataType, T.IntegerType)
    try:
        spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        df = spark.read.parquet(out)
        df = df.withColumn("snapshot_date", F.to_date("snapshot_date"))
        assert isinstance(df.schema["project_id"].dataType, T.StringType)
        assert isinstance(df.schema["snapshot_date"].dataType, T.DateType)
        counts = df.groupBy("project_id", "snapshot_date").count().collect()
    finally:
        spark.conf.unset("spark.sql.sources.partitionColumnTypeInference.enabled")
    assert {r["snapshot_date"] for r in counts} == {lake.snapshot_date}
    assert {r["project_id"]: r["count"] for r in counts} == lake.rows
