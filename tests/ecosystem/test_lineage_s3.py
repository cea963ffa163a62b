"""The lineage of a sync into object storage: the lake named ``s3://bucket`` + prefix, and
its bytes read back from the store (moto's S3 server on loopback)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from connector.airflow.lineage import SyncFacts, datasets
from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.ecosystem.test_s3 import BUCKET, S3_ENV, _files, _fs, s3_endpoint  # noqa: F401
from tests.integration.helpers import EVERY_EP, TOKEN, config, sync

pytestmark = pytest.mark.s3


def test_an_s3_lake_is_its_bucket_and_prefix_with_the_bytes_in_the_store(
    s3_endpoint: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    out = f"s3://{BUCKET}/lineage/hss_images"
    projects = ("p1", "p2")
    with simulator_in_thread(
        SimulatorConfig(seed=3, records=700, tokens=frozenset({TOKEN}))
    ) as sim:
        cfg = replace(config(sim.base_url, tmp_path, projects), out=out, s3_endpoint=s3_endpoint)
        report = sync(cfg)
        served = sum(sim.inventory.total(p, **EVERY_EP) for p in projects)

    inputs, [lake] = datasets(SyncFacts.of(cfg).ended(report.to_dict()))

    assert (lake.namespace, lake.name) == (f"s3://{BUCKET}", "lineage/hss_images")
    fs = _fs(s3_endpoint)
    parquet = [p for p in _files(fs, f"{BUCKET}/lineage/hss_images") if p.endswith(".parquet")]
    assert len(parquet) == len(projects)
    sizes = [fs.get_file_info(p).size for p in parquet]
    statistics = (lake.outputFacets or {})["outputStatistics"]
    assert (statistics.rowCount, statistics.size, statistics.fileCount) == (
        served,
        sum(sizes),
        len(parquet),
    )
    assert [d.name for d in inputs] == [f"/v5/{p}/image/local-repositories" for p in projects]
    assert isinstance(fs, pafs.S3FileSystem)
