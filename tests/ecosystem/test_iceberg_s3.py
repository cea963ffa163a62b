"""``--format iceberg`` with a warehouse on object storage (moto's S3 server on loopback).

The catalog is named (``--catalog lake``) and configured as pyiceberg users configure one,
with ``PYICEBERG_CATALOG__LAKE__*`` variables; the warehouse takes the folder lake's S3
settings (AWS_ENDPOINT_URL, AWS_REGION, the AWS_* credentials), so the catalog's own
configuration names no endpoint. The CLI runs as a process: pyiceberg reads its
configuration when it is first imported.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import spawn_cli
from tests.ecosystem.test_s3 import BUCKET, S3_ENV, _fs, s3_endpoint  # noqa: F401
from tests.integration.helpers import EVERY_EP, TOKEN

pytest.importorskip("pyiceberg.catalog.sql")

pytestmark = [pytest.mark.s3, pytest.mark.process]

PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")


def test_a_warehouse_on_s3_takes_the_lakes_s3_settings(
    s3_endpoint: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    warehouse = f"s3://{BUCKET}/iceberg-warehouse"
    catalog_db = tmp_path / "catalog.db"
    env = {
        **S3_ENV,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "HSS_AUTH_TOKEN": TOKEN,
        "PYICEBERG_CATALOG__LAKE__TYPE": "sql",
        "PYICEBERG_CATALOG__LAKE__URI": f"sqlite:///{catalog_db}",
        "PYICEBERG_CATALOG__LAKE__WAREHOUSE": warehouse,
    }
    report = tmp_path / "report.json"
    sim_config = SimulatorConfig(seed=5, records=150, tokens=frozenset({TOKEN}))
    with simulator_in_thread(sim_config) as sim:
        args = ["sync", "--endpoint", sim.base_url, "--out", str(tmp_path / "own")]
        args += ["--format", "iceberg", "--catalog", "lake", "--table", "security.images"]
        args += ["--rate", "0", "--progress", "off", "--report", str(report)]
        for project in PROJECTS:
            args += ["--project-id", project]
        result = spawn_cli(*args, env=env)
        truth = {p: len(sim.inventory.records(p, **EVERY_EP)) for p in PROJECTS}
    assert result.returncode == 0, result.stderr
    table_report = json.loads(report.read_text())["table"]
    assert table_report["catalog"] == "lake"
    assert table_report["identifier"] == "security.images"
    assert table_report["location"].startswith(warehouse)
    assert table_report["catalog_properties"]["s3.endpoint"] == s3_endpoint
    keys = [o.path for o in _fs(s3_endpoint).get_file_info(_selector(BUCKET))]
    assert any(k.endswith(".parquet") and "/data/project_id=" in k for k in keys)
    assert any(k.endswith(".metadata.json") for k in keys)

    catalog = SqlCatalog(
        "lake",
        uri=f"sqlite:///{catalog_db}",
        warehouse=warehouse,
        **{"s3.endpoint": s3_endpoint, "s3.region": "us-east-1"},
        **{"s3.access-key-id": "testing", "s3.secret-access-key": "testing"},
    )
    table = catalog.load_table("security.images")
    rows = table.scan().to_arrow().select(["project_id"]).to_pylist()
    assert Counter(r["project_id"] for r in rows) == truth


def _selector(bucket: str) -> Any:
    import pyarrow.fs as pafs

    return pafs.FileSelector(f"{bucket}/iceberg-warehouse", recursive=True)
