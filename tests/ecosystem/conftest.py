"""One Spark session for every Spark test of the run (each start-up costs about 10 s)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    pyspark_sql = pytest.importorskip("pyspark.sql")
    if shutil.which("java") is None:
        pytest.skip("no Java on this machine (./dev test installs one where it can)")
    session = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("hss-images-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()
