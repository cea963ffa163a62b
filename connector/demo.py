"""``hss-images demo``: the whole product on a laptop, no account needed.

Starts the embedded simulator with a realistic inventory over three projects, throttled
like a real gateway, and syncs two days of it to ``--out`` through the same ``run`` as
production: the inventory of the simulator's day 0 as yesterday's snapshot, of its day 1
(images added and removed, scans finished) as today's. Then summarises the Parquet written
with polars, and ends with what changed between the two days (``connector.diff``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shlex
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from connector.job.pipeline import run_async
from connector.lake.diff import diff
from connector.settings.config import Auth, Config, FetchSettings, Filters, ReadDate, Secret
from connector.simulator import SimulatorConfig, simulator_in_thread

__all__ = ["DEMO_PROJECTS", "run_demo", "summarise"]

DEMO_PROJECTS = {
    "2f1c7a9e0b5d4c3a8e6f1d2b3c4a5e6f": 24_000,  # production
    "7d3e9b1a5c2f4e6d8a0b1c3e5f7a9b2d": 15_000,  # data platform
    "c4b8e2f6a0d94b1c7e3a5f8d2b6c0e9a": 6_000,  # edge / dev
}
DEMO_TOKEN = "demo-token-not-a-secret"
HIVE_SCHEMA = {"project_id": pl.String, "snapshot_date": pl.Date}
"""The partition columns' types, as the manual's read gives them (ids stay text)."""


def summarise(out: str) -> str:
    """Images by scan status and severity, and the most vulnerable images."""
    images = pl.scan_parquet(out, hive_partitioning=True, hive_schema=HIVE_SCHEMA)
    latest = images.select(pl.col("snapshot_date").max()).collect().item()
    images = images.filter(pl.col("snapshot_date") == latest)
    lines: list[str] = []
    with pl.Config(
        tbl_rows=12,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="ASCII_MARKDOWN",
        tbl_width_chars=140,
        fmt_str_lengths=60,
    ):
        by_status = (
            images.group_by("scan_status")
            .agg(pl.len().alias("images"), pl.col("vul_num").sum().alias("vulnerabilities"))
            .sort("images", descending=True)
            .collect()
        )
        by_severity = (
            images.filter(pl.col("severity_level").is_not_null())
            .group_by("severity_level")
            .agg(pl.len().alias("images"))
            .sort("images", descending=True)
            .collect()
        )
        worst = (
            images.sort(
                ["vul_num", "malicious_file_num", "image_size"], descending=True, nulls_last=True
            )
            .select(
                pl.col("project_id").str.slice(0, 8).alias("project"),
                (pl.col("image_name") + ":" + pl.col("image_version")).alias("image"),
                pl.col("vul_num").alias("vulnerabilities"),
                pl.col("malicious_file_num").alias("malicious files"),
                pl.col("severity_level").alias("severity"),
                "host_name",
            )
            .head(10)
            .collect()
        )
        total = images.select(pl.len()).collect().item()
        lines += [
            f"{total} images in {out} on {latest}",
            "",
            "Images by scan status:",
            str(by_status),
            "",
            "Scanned images by severity:",
            str(by_severity),
            "",
            "The ten most vulnerable images:",
            str(worst),
        ]
    return "\n".join(lines)


def run_demo(out: str = "demo-output", records: int | None = None) -> int:
    projects = {p: records if records is not None else n for p, n in DEMO_PROJECTS.items()}
    simulator = SimulatorConfig(
        seed=7,
        project_records=projects,
        tokens=frozenset({DEMO_TOKEN}),
        rate=50,
        burst=10,
        latency_ms=40,
        jitter_ms=20,
    )
    print(
        f"Starting the HSS simulator: {sum(projects.values())} images in {len(projects)} "
        "projects, throttled at 50 requests/s with 40 ms latency ...",
        file=sys.stderr,
    )
    now = ReadDate.now()  # a plain date from here: a given snapshot date, not the default
    today = date(now.year, now.month, now.day)
    for day, snapshot_date in ((0, today - timedelta(days=1)), (1, today)):
        with simulator_in_thread(dataclasses.replace(simulator, day=day)) as sim:
            config = Config(
                projects=tuple(projects),
                endpoint=sim.base_url,
                out=out,
                auth=Auth(token=Secret(DEMO_TOKEN)),
                fetch=FetchSettings(rate=48, burst=1, concurrency=8),
                filters=Filters(enterprise_project_id="all_granted_eps"),
                snapshot_date=snapshot_date,
            )
            print(
                f"Syncing day {day} of the simulator ({sim.base_url}) into "
                f"{Path(out).resolve()} as snapshot {snapshot_date} ...",
                file=sys.stderr,
            )
            report = asyncio.run(run_async(config))
        print(report.summary(), file=sys.stderr)
        if report.exit_code != 0:
            return report.exit_code
    print()
    print(summarise(out))
    print("\nWhat changed since yesterday (hss-images diff " + shlex.quote(out) + "):")
    print(diff(out, from_date=today - timedelta(days=1), to_date=today).summary())
    query = (
        f"import polars as pl; print(pl.scan_parquet({json.dumps(out)}, hive_partitioning=True, "
        'hive_schema={"project_id": pl.String, "snapshot_date": pl.Date})'
        '.group_by("scan_status").len().sort("len", descending=True).collect())'
    )
    print("\nQuery it yourself (polars, with the Python this demo ran on):")
    print(f"  {_python()} -c {shlex.quote(query)}")
    return 0


def _python() -> str:
    """The interpreter running the demo, which has polars: relative when it is below here."""
    path = Path(sys.executable)
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return shlex.quote(str(path))
