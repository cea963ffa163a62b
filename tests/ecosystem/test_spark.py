"""Spark reads the output: row count, 64-bit integers, timestamps, dates, partitions.

The read below is the one the manual shows (partition types not inferred, so a project id
that looks like a number stays the string it is). The session is in conftest.py (one per run).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector import Filters
from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.integration.helpers import TOKEN, config, sync

pytestmark = pytest.mark.spark
PROJECTS = ("0123456789", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")


def test_spark_reads_the_partitioned_output(spark: Any, tmp_path: Path) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    with simulator_in_thread(
        SimulatorConfig(seed=61, records=700, tokens=frozenset({TOKEN}))
    ) as sim:
        report = sync(
            config(
                sim.base_url,
                tmp_path,
                PROJECTS,
                snapshot_date=datetime.now(UTC).date(),  # a snapshot is of today
                filters=Filters(enterprise_project_id="all_granted_eps"),
            )
        )
        expected = sum(
            sim.inventory.total(p, enterprise_project_id="all_granted_eps") for p in PROJECTS
        )
    assert report.status == "success"

    # the manual: reading the lake with Spark
    try:
        spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        df = spark.read.parquet(str(tmp_path))
        df = df.withColumn("snapshot_date", F.to_date("snapshot_date"))
        assert df.count() == expected
        per_project = {
            r["project_id"]: r["count"] for r in df.groupBy("project_id").count().collect()
        }
    finally:
        spark.conf.unset("spark.sql.sources.partitionColumnTypeInference.enabled")
    fields = {f.name: f.dataType for f in df.schema.fields}
    assert isinstance(fields["image_size"], T.LongType)
    assert isinstance(fields["vul_num"], T.LongType)
    assert isinstance(fields["latest_update_time"], T.TimestampType)
    assert isinstance(fields["ingested_at"], T.TimestampType)
    assert isinstance(fields["snapshot_date"], T.DateType)
    assert isinstance(fields["project_id"], T.StringType)
    assert [f.name for f in df.schema.fields].count("project_id") == 1
    assert set(per_project) == set(PROJECTS)
    big = df.filter("image_size > 4294967296").count()
    assert big > 0
    newest = df.agg({"latest_update_time": "max"}).collect()[0][0]
    assert 2022 <= newest.year <= 2027
