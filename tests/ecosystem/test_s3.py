"""``--out s3://...`` against a real S3-compatible server (moto's) on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread
from tests.integration.helpers import EVERY_EP, TOKEN, cli, config, sync

pytestmark = pytest.mark.s3
PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")
BUCKET = "lake"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            **{
                "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing",
                "region_name": "us-east-1",
            },
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _storage(endpoint: str) -> dict[str, str]:
    """polars' options for reading s3:// URIs from moto."""
    return {
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "aws_endpoint_url": endpoint,
        "aws_allow_http": "true",
    }


def _fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
    )


def test_sync_to_s3_publishes_the_same_layout_and_replaces_on_rerun(
    s3_endpoint: str, tmp_path: Path
) -> None:
    out = f"s3://{BUCKET}/hss/images"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "HSS_AUTH_TOKEN": TOKEN}
    faults = FaultConfig(fraction_rate=0.01)
    with simulator_in_thread(
        SimulatorConfig(seed=51, records=900, tokens=frozenset({TOKEN}), faults=faults)
    ) as sim:
        today = datetime.now(UTC).date().isoformat()
        args = ["sync", "--out", out, "--endpoint", sim.base_url, "--snapshot-date", today]
        for project in PROJECTS:
            args += ["--project-id", project]
        first = cli(*args, env=env)
        assert first.returncode == 0, first.stderr
        second = cli(*args, env=env)
        assert second.returncode == 0, second.stderr
        expected = sum(sim.inventory.total(p, **EVERY_EP) for p in PROJECTS)
        quarantined = sum(len(sim.inventory.quarantine_ids(p, **EVERY_EP)) for p in PROJECTS)
    fs = _fs(s3_endpoint)
    files = [
        i.path
        for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/hss/images", recursive=True))
        if i.type == pafs.FileType.File
    ]
    parquet = sorted(f for f in files if f.endswith(".parquet"))
    assert len(parquet) == 2, files  # one file per partition; the first run's were replaced
    assert all(f"/snapshot_date={today}/" in f for f in parquet)
    assert not [f for f in files if "_staging" in f or f.endswith(".partial")]
    assert len([f for f in files if f.endswith(".jsonl")]) >= 1
    dataset = ds.dataset(
        f"{BUCKET}/hss/images", filesystem=fs, format="parquet", partitioning="hive"
    )
    table = dataset.to_table()
    assert table.num_rows == expected - quarantined
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert frame["image_id"].n_unique() == frame.height
    assert set(frame["project_id"].unique().to_list()) == set(PROJECTS)


def test_s3_endpoint_flag_overrides_and_a_bad_bucket_fails_clearly(s3_endpoint: str) -> None:
    env = {**S3_ENV, "HSS_AUTH_TOKEN": TOKEN}
    with simulator_in_thread(SimulatorConfig(records=50, tokens=frozenset({TOKEN}))) as sim:
        result = cli(
            "sync",
            "--project-id",
            PROJECTS[0],
            "--out",
            "s3://no-such-bucket/x",
            "--s3-endpoint",
            s3_endpoint,
            "--endpoint",
            sim.base_url,
            env=env,
        )
    # found before any request: a configuration error, like any other wrong --out
    assert result.returncode == 2, result.stderr
    assert "ConfigError: --out: the bucket 'no-such-bucket' does not exist" in result.stderr
    assert "testing" not in result.stderr.replace("AWS_ACCESS_KEY_ID", "")


def test_any_fsspec_filesystem_works_through_the_library(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    with simulator_in_thread(
        SimulatorConfig(seed=52, records=300, tokens=frozenset({TOKEN}))
    ) as sim:
        cfg = replace(config(sim.base_url, tmp_path, (PROJECTS[0],)), out="memory://lake/hss")
        report = sync(cfg)
        expected = sim.inventory.total(PROJECTS[0], **EVERY_EP)
    assert report.status == "success", report.summary()
    memory = fsspec.filesystem("memory")
    files = memory.glob("/lake/hss/**/*.parquet")
    assert len(files) == 1 and f"project_id={PROJECTS[0]}" in files[0]
    with memory.open(files[0], "rb") as handle:
        assert pl.read_parquet(handle).height == expected


def test_the_report_names_object_storage_files_with_their_scheme(
    s3_endpoint: str, tmp_path: Path
) -> None:
    out = f"s3://{BUCKET}/report-uris"
    report_path = tmp_path / "report.json"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "HSS_AUTH_TOKEN": TOKEN}
    with simulator_in_thread(SimulatorConfig(records=40, tokens=frozenset({TOKEN}))) as sim:
        result = cli(
            "sync",
            "--out",
            out,
            "--endpoint",
            sim.base_url,
            "--project-id",
            PROJECTS[0],
            "--report",
            str(report_path),
            env=env,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    [written] = report["projects"][PROJECTS[0]]["files"]
    assert report["files"] == [written]
    assert written.startswith(f"{out}/project_id={PROJECTS[0]}/"), written
    assert written.endswith(".parquet")
    # the URI as written in the report is one a reader can open as it stands
    assert pl.read_parquet(written, storage_options=_storage(s3_endpoint)).height == 40
