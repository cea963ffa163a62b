"""The Iceberg table as its readers see it: pyiceberg (the current snapshot and an earlier
one), polars.scan_iceberg (the catalog's table and its metadata file), and DuckDB over a
pyiceberg scan. The reads are the ones docs/iceberg.md shows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.integration.helpers import EVERY_EP, TOKEN, config, sync

pytest.importorskip("pyiceberg.catalog.sql")

PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two runs of one day against two inventories: two snapshots, and their truths."""
    out = tmp_path_factory.mktemp("iceberg") / "table"
    truths = []
    for seed, records in ((11, 120), (12, 90)):
        sim_config = SimulatorConfig(seed=seed, records=records, tokens=frozenset({TOKEN}))
        with simulator_in_thread(sim_config) as sim:
            cfg = config(sim.base_url, out, PROJECTS, format="iceberg")
            report = sync(replace(cfg, run_id=f"seed{seed}"))
            assert report.status == "success"
            truths.append(
                {
                    p: sorted(r["image_id"] for r in sim.inventory.records(p, **EVERY_EP))
                    for p in PROJECTS
                }
            )
    yield {"out": out, "truths": truths}


def _catalog(out: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("hss", uri=f"sqlite:///{out}/catalog.db", warehouse=f"file://{out}/warehouse")


def _ids(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {p: [] for p in PROJECTS}
    for row in rows:
        found[row["project_id"]].append(row["image_id"])
    return {p: sorted(ids) for p, ids in found.items()}


def test_pyiceberg_reads_the_current_snapshot_and_an_earlier_one(lake: dict[str, Any]) -> None:
    table = _catalog(lake["out"]).load_table("hss.image_local_info")
    first, second = table.snapshots()
    current = table.scan(selected_fields=("project_id", "image_id")).to_arrow()
    assert _ids(current.to_pylist()) == lake["truths"][1]
    earlier = table.scan(snapshot_id=first.snapshot_id).to_arrow()
    assert _ids(earlier.to_pylist()) == lake["truths"][0]
    one = table.scan(row_filter=f"project_id == '{PROJECTS[0]}'").to_arrow()
    assert one.num_rows == len(lake["truths"][1][PROJECTS[0]])
    assert table.history()[-1].snapshot_id == second.snapshot_id


def test_polars_scans_the_table_and_its_metadata_file(
    lake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # polars_iceberg is not needed
    table = _catalog(lake["out"]).load_table("hss.image_local_info")
    current = pl.scan_iceberg(table).select("project_id", "image_id").collect()
    assert _ids(current.to_dicts()) == lake["truths"][1]
    first = table.snapshots()[0].snapshot_id
    earlier = pl.scan_iceberg(table, snapshot_id=first).select("project_id", "image_id").collect()
    assert _ids(earlier.to_dicts()) == lake["truths"][0]
    by_file = pl.scan_iceberg(table.metadata_location).select(pl.len()).collect().item()
    assert by_file == sum(len(ids) for ids in lake["truths"][1].values())
    schema = pl.scan_iceberg(table).collect_schema()
    assert schema["snapshot_date"] == pl.Date and schema["project_id"] == pl.String
    assert schema["latest_scan_time"] == pl.Datetime("us", "UTC")


def test_duckdb_queries_a_pyiceberg_scan(lake: dict[str, Any]) -> None:
    table = _catalog(lake["out"]).load_table("hss.image_local_info")
    connection = table.scan().to_duckdb("images")
    counted = connection.sql(
        "SELECT project_id, count(*) FROM images GROUP BY ALL ORDER BY project_id"
    ).fetchall()
    assert counted == sorted((p, len(ids)) for p, ids in lake["truths"][1].items())
