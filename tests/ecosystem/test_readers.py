"""Every reader the README names reads OUT as a directory, with a quarantine and a run staging.

The lake: two projects published with quarantined records, and a third project's run in
progress (stopped with SIGSTOP once its staging holds a file). Each reader is called the
way the README shows it, on the directory itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest

from connector import Filters
from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread
from tests.commands import spawn_cli
from tests.integration.helpers import TOKEN

PUBLISHED = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")
IN_PROGRESS = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


@dataclass(frozen=True)
class Lake:
    out: Path
    rows: int

    def check_state_is_present(self) -> None:
        """The quarantine and a run's staging exist right now, beside the data."""
        state = Path(f"{self.out}.connector")
        assert list(state.glob("quarantine/project_id=*/snapshot_date=*/quarantine.jsonl"))
        assert [p for p in state.glob("staging/*/*") if p.stat().st_size > 0]


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
        project_records={IN_PROGRESS: 20_000},
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
        rows = sum(
            sim.inventory.total(p, **query) - len(sim.inventory.quarantine_ids(p, **query))
            for p in PUBLISHED
        )
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
            yield Lake(out, rows)
        finally:
            running.kill()
            running.wait(timeout=30)


def test_polars_reads_the_directory(lake: Lake) -> None:
    lake.check_state_is_present()
    frame = pl.scan_parquet(str(lake.out), hive_partitioning=True).collect()
    assert frame.height == lake.rows
    assert set(frame["project_id"].unique()) == set(PUBLISHED)
    assert frame.schema["snapshot_date"] == pl.Date


def test_pyarrow_dataset_reads_the_directory(lake: Lake) -> None:
    lake.check_state_is_present()
    table = ds.dataset(str(lake.out), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == lake.rows
    assert set(table["project_id"].unique().to_pylist()) == set(PUBLISHED)


def test_duckdb_reads_the_glob(lake: Lake) -> None:
    lake.check_state_is_present()
    [(rows, projects, date_type)] = duckdb.sql(
        "select count(*), count(distinct project_id), any_value(typeof(snapshot_date)) "
        f"from read_parquet('{lake.out}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert (rows, projects, date_type) == (lake.rows, len(PUBLISHED), "DATE")


@pytest.mark.spark
def test_spark_reads_the_directory(lake: Lake, spark: Any) -> None:
    lake.check_state_is_present()
    frame = spark.read.parquet(str(lake.out))
    assert frame.count() == lake.rows
    projects = {r["project_id"] for r in frame.select("project_id").distinct().collect()}
    assert projects == set(PUBLISHED)
    assert frame.schema["snapshot_date"].dataType.typeName() == "date"
