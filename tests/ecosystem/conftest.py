"""Shared by the ecosystem tests, each set up once per run: a Spark session (its start-up
costs about 10 s) and a migrated Airflow home (``airflow db migrate`` costs as much)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .airflow_env import EXAMPLE_DAG, LINEAGE_DAG, AirflowEnv, migrated_home


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


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> AirflowEnv:
    """A migrated AIRFLOW_HOME whose DAG folder holds the example DAG and the lineage DAG
    (the tests that use it are marked with ``airflow_env.NEEDS_AIRFLOW``)."""
    return migrated_home(tmp_path_factory.mktemp("airflow_home"), [EXAMPLE_DAG, LINEAGE_DAG])
