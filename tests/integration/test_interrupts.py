"""Interrupted runs: kill a real CLI process mid-run; nothing half-written is visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.simulator import SimulatorConfig, simulator_in_thread

from .helpers import TOKEN, cli, read_rows

PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")


def _visible(out: Path) -> list[Path]:
    """What a reader of OUT/**/*.parquet (DuckDB, polars) would pick up."""
    return sorted(out.rglob("*.parquet"))


def _sync_all(base_url: str, out: Path) -> None:
    args = ["sync", "--out", str(out), "--endpoint", base_url, "--rate", "0"]
    for project in PROJECTS:
        args += ["--project-id", project]
    result = cli(*args, env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr


def _start(base_url: str, out: Path) -> subprocess.Popen[str]:
    args = ["sync", "--out", str(out), "--endpoint", base_url, "--rate", "15", "--progress", "log"]
    for project in PROJECTS:
        args += ["--project-id", project]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSS_")}
    env["HSS_AUTH_TOKEN"] = TOKEN
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killed_run_leaves_the_previous_snapshot_intact(
    tmp_path: Path, how: signal.Signals
) -> None:
    sim_config = SimulatorConfig(seed=31, records=3_000, tokens=frozenset({TOKEN}), latency_ms=20)
    with simulator_in_thread(sim_config) as sim:
        _sync_all(sim.base_url, tmp_path)
        before = {p: p.read_bytes() for p in _visible(tmp_path)}
        rows_before = sorted(r["image_id"] for r in read_rows(tmp_path))

        process = _start(sim.base_url, tmp_path)
        deadline = time.monotonic() + 30
        while sim.stats.requests < 40 and time.monotonic() < deadline:  # well into the run
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be interrupted"
        process.send_signal(how)
        _, stderr = process.communicate(timeout=30)

        if how != signal.SIGKILL:
            assert process.returncode == 130, stderr
            assert "interrupted" in stderr
            assert not Path(f"{tmp_path}.connector/staging").exists(), "a clean stop removes it"
        assert {p: p.read_bytes() for p in _visible(tmp_path)} == before
        assert sorted(r["image_id"] for r in read_rows(tmp_path)) == rows_before

        _sync_all(sim.base_url, tmp_path)  # a rerun completes normally
    assert sorted(r["image_id"] for r in read_rows(tmp_path)) == rows_before
    assert len(_visible(tmp_path)) == 2
