"""``--out s3://...`` against a real S3-compatible server (moto's) on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

import connector
from connector import Filters
from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread
from tests.commands import Cli
from tests.integration.helpers import EVERY_EP, TOKEN, config, sync

pytestmark = pytest.mark.s3
TODAY = datetime.now(UTC).date().isoformat()
DEFAULT_QUERY = dict(Filters().params())  # what a run without filter flags asks for
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


def _files(fs: pafs.S3FileSystem, prefix: str) -> list[str]:
    selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
    return sorted(i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.File)


def _polars_options(endpoint: str) -> dict[str, str]:
    return {
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }


def _run_ids(fs: pafs.S3FileSystem, prefix: str) -> tuple[int, set[str]]:
    table = ds.dataset(prefix, filesystem=fs, format="parquet", partitioning="hive").to_table()
    return table.num_rows, set(table["run_id"].unique().to_pylist())


def test_sync_to_s3_publishes_the_same_layout_and_replaces_on_rerun(
    cli: Cli, s3_endpoint: str, tmp_path: Path
) -> None:
    out = f"s3://{BUCKET}/hss/images"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "HSS_AUTH_TOKEN": TOKEN}
    faults = FaultConfig(fraction_rate=0.01)
    with simulator_in_thread(
        SimulatorConfig(seed=51, records=900, tokens=frozenset({TOKEN}), faults=faults)
    ) as sim:
        args = ["sync", "--out", out, "--endpoint", sim.base_url, "--snapshot-date", TODAY]
        for project in PROJECTS:
            args += ["--project-id", project]
        first = cli(*args, env=env)
        assert first.returncode == 0, first.stderr
        second = cli(*args, env=env)
        assert second.returncode == 0, second.stderr
        expected = sum(sim.inventory.total(p, **DEFAULT_QUERY) for p in PROJECTS)
        quarantined = sum(len(sim.inventory.quarantine_ids(p, **DEFAULT_QUERY)) for p in PROJECTS)
    fs = _fs(s3_endpoint)
    files = _files(fs, f"{BUCKET}/hss/images")
    assert files == sorted(  # one data.parquet per partition and nothing else
        f"{BUCKET}/hss/images/project_id={p}/snapshot_date={TODAY}/data.parquet" for p in PROJECTS
    )
    state = _files(fs, f"{BUCKET}/hss/images.connector")
    assert f"{BUCKET}/hss/images.connector/lake.json" in state
    quarantine = [f for f in state if f.endswith("/quarantine.jsonl")]
    assert quarantine and all("/images.connector/quarantine/project_id=" in f for f in quarantine)
    assert not [f for f in state if "staging" in f or f.endswith(".partial")]
    rows, runs = _run_ids(fs, f"{BUCKET}/hss/images")
    assert rows == expected - quarantined and len(runs) == 1  # the second run's only
    # polars reads the prefix as a directory, with the quarantine beside it
    frame = pl.scan_parquet(
        f"s3://{BUCKET}/hss/images/",
        hive_partitioning=True,
        storage_options=_polars_options(s3_endpoint),
    ).collect()
    assert frame.height == rows
    assert frame["image_id"].n_unique() == frame.height
    assert set(frame["project_id"].unique().to_list()) == set(PROJECTS)


def test_s3_endpoint_flag_overrides_and_a_bad_bucket_fails_clearly(
    cli: Cli, s3_endpoint: str
) -> None:
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
    cli: Cli, s3_endpoint: str, tmp_path: Path
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


@pytest.mark.process
def test_s3_an_older_run_finishing_last_keeps_the_newer_snapshot(
    cli: Cli, s3_endpoint: str, tmp_path: Path
) -> None:
    prefix = f"{BUCKET}/older-finishing-last"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "HSS_AUTH_TOKEN": TOKEN}
    with simulator_in_thread(
        SimulatorConfig(seed=53, records=3_000, tokens=frozenset({TOKEN}))
    ) as sim:
        args = ["sync", "--out", f"s3://{prefix}", "--endpoint", sim.base_url]
        args += ["--project-id", PROJECTS[0], "--progress", "off"]
        slow = subprocess.Popen(
            [*_command(args), "--rate", "2", "--report", str(tmp_path / "slow.json")],
            stderr=subprocess.PIPE,
            text=True,
            env={**_base_env(), **env},
        )
        deadline = time.monotonic() + 60
        while sim.stats.requests == 0:  # the slow run has opened the output: it is older
            assert time.monotonic() < deadline and slow.poll() is None, "the slow run did not start"
            time.sleep(0.02)
        fast = cli(*args, "--rate", "0", "--report", str(tmp_path / "fast.json"), env=env)
        assert fast.returncode == 0, fast.stderr
        _, stderr = slow.communicate(timeout=120)
        assert slow.returncode == 0, stderr
        expected = sim.inventory.total(PROJECTS[0], **DEFAULT_QUERY)
    newer = orjson.loads((tmp_path / "fast.json").read_bytes())
    older = orjson.loads((tmp_path / "slow.json").read_bytes())
    assert older["projects"][PROJECTS[0]]["status"] == "superseded"
    assert older["projects"][PROJECTS[0]]["superseded_by"] == newer["run_id"]
    fs = _fs(s3_endpoint)
    assert len(_files(fs, prefix)) == 1
    assert _run_ids(fs, prefix) == (expected, {newer["run_id"]})


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "connector.cli", *args]


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("HSS_", "AWS_"))}


class _HoldingProxy:
    """A TCP proxy to S3 that stops passing the client's bytes on at a chosen moment.

    The request that makes a data file appear is a PUT of the object or, as pyarrow
    uploads, the POST completing its multipart upload. ``before``: from that request on
    (the object is never replaced). ``after``: from the server's ``200`` answer to it on
    (the new object is in place; nothing the client sends afterwards arrives). ``reached``
    is set at that moment.
    """

    PUT_DATA = re.compile(rb"^(PUT [^ ?]*\.parquet|POST [^ ?]*\.parquet\?uploadId=[^ ]*) HTTP/")

    def __init__(self, upstream: str, when: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.when = when
        self.reached = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                server = socket.create_connection(self.upstream)
                watching = threading.Event()  # this connection sent the PUT of data.parquet
                threading.Thread(
                    target=self._upstream, args=(client, server, watching), daemon=True
                ).start()
                threading.Thread(
                    target=self._downstream, args=(server, client, watching), daemon=True
                ).start()

    def _upstream(self, client: socket.socket, server: socket.socket, watching: Any) -> None:
        with contextlib.suppress(OSError), client, server:
            while chunk := client.recv(65536):
                if self.reached.is_set():
                    continue  # held: never reaches the server
                if self.PUT_DATA.search(chunk):
                    if self.when == "before":
                        self.reached.set()
                        continue
                    watching.set()
                server.sendall(chunk)

    def _downstream(self, server: socket.socket, client: socket.socket, watching: Any) -> None:
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                client.sendall(chunk)
                if watching.is_set() and b"HTTP/1.1 200" in chunk:
                    self.reached.set()
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


@pytest.mark.process
@pytest.mark.parametrize(
    ("when", "survivor"),
    [("before", "old"), ("after", "new")],
    ids=["killed-during-the-upload", "killed-right-after-the-upload"],
)
def test_s3_sigkill_around_the_upload_leaves_one_snapshot(
    cli: Cli, s3_endpoint: str, tmp_path: Path, when: str, survivor: str
) -> None:
    prefix = f"{BUCKET}/killed-{when}"
    temp = tmp_path / "tmp"  # where the killed run stages, not the system's /tmp
    temp.mkdir()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "HSS_AUTH_TOKEN": TOKEN}
    faults = FaultConfig(fraction_rate=0.01)
    fs = _fs(s3_endpoint)
    with simulator_in_thread(
        SimulatorConfig(seed=54, records=2_000, tokens=frozenset({TOKEN}), faults=faults)
    ) as sim:
        args = ["sync", "--out", f"s3://{prefix}", "--endpoint", sim.base_url, "--rate", "0"]
        args += ["--project-id", PROJECTS[0], "--progress", "off"]
        first = cli(*args, env=env)
        assert first.returncode == 0, first.stderr
        rows, old_runs = _run_ids(fs, prefix)
        proxy = _HoldingProxy(s3_endpoint, when)
        try:
            process = subprocess.Popen(
                [*_command(args), "--s3-endpoint", proxy.endpoint],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env={**_base_env(), **S3_ENV, "HSS_AUTH_TOKEN": TOKEN, "TMPDIR": str(temp)},
            )
            assert proxy.reached.wait(60), "the run never uploaded its partition"
            process.kill()
            _, stderr = process.communicate(timeout=30)
        finally:
            proxy.close()
    assert process.returncode == -signal.SIGKILL, stderr
    assert [p.name for p in temp.glob("hss-staging-*/*.partial")], "killed while staging"
    data = [f for f in _files(fs, prefix) if f.endswith(".parquet")]
    assert len(data) == 1, data  # one snapshot, never two, never none
    got_rows, runs = _run_ids(fs, prefix)
    assert got_rows == rows and len(runs) == 1
    assert (runs == old_runs) == (survivor == "old"), (runs, old_runs)
    frame = pl.scan_parquet(
        f"s3://{prefix}/", hive_partitioning=True, storage_options=_polars_options(s3_endpoint)
    ).collect()
    assert frame.height == rows


def test_s3_a_run_with_another_query_is_refused_and_an_old_layout_is_moved(
    cli: Cli,
    s3_endpoint: str,
) -> None:
    prefix = f"{BUCKET}/legacy"
    partition = f"project_id={PROJECTS[0]}/snapshot_date={TODAY}"
    untouched = f"project_id={PROJECTS[1]}/snapshot_date={TODAY}"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "HSS_AUTH_TOKEN": TOKEN}
    fs = _fs(s3_endpoint)
    with simulator_in_thread(
        SimulatorConfig(seed=55, records=500, tokens=frozenset({TOKEN}))
    ) as sim:
        args = ["sync", "--out", f"s3://{prefix}", "--endpoint", sim.base_url, "--rate", "0"]
        args += ["--snapshot-date", TODAY, "--project-id", PROJECTS[0]]
        first = cli(*args, "--project-id", PROJECTS[1], env=env)
        assert first.returncode == 0, first.stderr
        # the previous version's layout, by hand: part-<run_id>.parquet (two of them after
        # a kill) and OUT/_quarantine/<partition>/quarantine-<run_id>.jsonl
        for name in (partition, untouched):
            fs.move(
                f"{prefix}/{name}/data.parquet", f"{prefix}/{name}/part-20261127T0000Z-b.parquet"
            )
            with fs.open_output_stream(
                f"{prefix}/_quarantine/{name}/quarantine-20261127T0000Z-b.jsonl"
            ) as stream:
                stream.write(b'{"record": {}}\n')
        fs.copy_file(
            f"{prefix}/{untouched}/part-20261127T0000Z-b.parquet",
            f"{prefix}/{untouched}/part-20261126T0000Z-a.parquet",
        )
        fs.delete_dir(f"{prefix}.connector")

        again = cli(*args, env=env)  # the first project only
        assert again.returncode == 0, again.stderr
        refused = cli(*args, "--scan-status", "success", env=env)
        expected = sum(sim.inventory.total(p, **DEFAULT_QUERY) for p in PROJECTS)
    assert refused.returncode == 2 and "another query" in refused.stderr, refused.stderr
    assert _files(fs, prefix) == [  # the untouched partition keeps its newest file until
        f"{prefix}/{partition}/data.parquet",  # its next publish (no rename on S3)
        f"{prefix}/{untouched}/part-20261127T0000Z-b.parquet",
    ]
    state = _files(fs, f"{prefix}.connector")
    assert f"{prefix}.connector/quarantine/{untouched}/quarantine.jsonl" in state
    assert f"{prefix}.connector/quarantine/{partition}/quarantine.jsonl" not in state  # replaced
    assert _run_ids(fs, prefix)[0] == expected


def test_diff_of_an_s3_lake_is_the_diff_of_the_same_lake_on_disk(
    cli: Cli, s3_endpoint: str, tmp_path: Path
) -> None:
    """Two days of the simulator synced into S3 and onto disk: ``hss-images diff`` reads
    the S3 lake through the writer's filesystem (``--s3-endpoint``) and finds what it finds
    on disk; the quarantine of either day is named with its s3 path."""
    out, local = f"s3://{BUCKET}/diff/images", tmp_path / "images"
    env = {**S3_ENV, "HSS_AUTH_TOKEN": TOKEN}
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    for day, snapshot_date in ((0, yesterday), (1, TODAY)):
        simulator = SimulatorConfig(
            seed=52,
            records=700,
            shared_image_rate=0.3,
            tokens=frozenset({TOKEN}),
            faults=FaultConfig(fraction_rate=0.005),
            day=day,
        )
        with simulator_in_thread(simulator) as sim:
            for target in (out, str(local)):
                args = ["sync", "--out", target, "--endpoint", sim.base_url]
                args += ["--snapshot-date", snapshot_date, "--s3-endpoint", s3_endpoint]
                for project in PROJECTS:
                    args += ["--project-id", project]
                done = cli(*args, env=env)
                assert done.returncode == 0, done.stderr
    shown = cli("diff", out, "--s3-endpoint", s3_endpoint, env=S3_ENV)
    assert shown.returncode == 0, shown.stderr
    assert f"project {PROJECTS[0]}, {yesterday} -> {TODAY}:" in shown.stdout
    assert "quarantine: " in shown.stdout and f"{BUCKET}/diff/images.connector/quarantine/" in (
        shown.stdout
    )
    written = cli(
        "diff",
        out,
        "--s3-endpoint",
        s3_endpoint,
        "--output",
        str(tmp_path / "s3.parquet"),
        env=S3_ENV,
    )
    assert written.returncode == 0, written.stderr
    from_s3 = pl.read_parquet(tmp_path / "s3.parquet")
    on_disk = connector.diff(str(local)).table()
    assert from_s3.height > 0
    assert from_s3.equals(pl.from_arrow(on_disk))
