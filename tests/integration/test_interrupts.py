"""Interrupted runs: kill a real CLI process mid-run; nothing half-written is visible."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import TOKEN, config, read_rows, sync

PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")


def _visible(out: Path) -> list[Path]:
    """What a reader of OUT/**/*.parquet (DuckDB, polars) would pick up."""
    return sorted(out.rglob("*.parquet"))


def _sync_all(cli: Cli, base_url: str, out: Path) -> None:
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


@pytest.mark.process
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killed_run_leaves_the_previous_snapshot_intact(
    cli: Cli, tmp_path: Path, how: signal.Signals
) -> None:
    sim_config = SimulatorConfig(seed=31, records=3_000, tokens=frozenset({TOKEN}), latency_ms=20)
    with simulator_in_thread(sim_config) as sim:
        _sync_all(cli, sim.base_url, tmp_path)
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

        _sync_all(cli, sim.base_url, tmp_path)  # a rerun completes normally
    assert sorted(r["image_id"] for r in read_rows(tmp_path)) == rows_before
    assert len(_visible(tmp_path)) == 2


def _left(folder: Path, *, days_ago: float, file_days_ago: float | None = None) -> Path:
    """A staging folder with one partial file, as a killed run leaves it."""
    folder.mkdir(parents=True)
    partial = folder / "x.parquet.partial"
    partial.write_bytes(b"PAR1")
    old = time.time() - days_ago * 86_400
    touched = old if file_days_ago is None else time.time() - file_days_ago * 86_400
    os.utime(partial, (touched, touched))
    os.utime(folder, (old, old))
    return folder


@pytest.mark.parametrize("lake", ["local", "object storage"])
def test_the_next_run_removes_staging_that_killed_runs_left_a_day_ago(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lake: str
) -> None:
    """A run into object storage stages in the temporary folder, a local one beside OUT;
    either way a SIGKILL leaves partial files there. The next run removes what nothing has
    written for a day, and only its own kind of folder."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    if lake == "local":
        out, base, prefix = str(tmp_path / "lake"), tmp_path / "lake.connector" / "staging", ""
    else:
        out, base, prefix = "memory://sweep/hss", temp, "hss-staging-"
    killed = _left(base / f"{prefix}20261101T000000Z-aaaaaa", days_ago=2)
    recent = _left(base / f"{prefix}20261130T230000Z-bbbbbb", days_ago=0.5)
    long_run = _left(base / f"{prefix}20261129T000000Z-cccccc", days_ago=2, file_days_ago=0.01)
    other = _left(temp / "someone-elses-2026", days_ago=30)
    with simulator_in_thread(
        SimulatorConfig(seed=57, records=300, tokens=frozenset({TOKEN}))
    ) as sim:
        report = sync(replace(config(sim.base_url, tmp_path, PROJECTS[:1]), out=out))
    assert report.status == "success", report.summary()
    assert not killed.exists(), "a day without a write: left by a killed run"
    assert other.exists(), "not a staging folder"
    left = sorted(p for p in base.iterdir() if p.name.startswith(prefix) and p != other)
    assert left == [long_run, recent], "possibly live runs' (the run removed its own)"


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (``SigCgt`` in /proc/PID/status)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.process
@pytest.mark.parametrize("delay_ms", [0, 20, 50, 100, 200, 400])
def test_a_sigterm_as_the_run_starts_still_leaves_an_interrupted_report(
    tmp_path: Path, delay_ms: int
) -> None:
    """SIGTERM from the moment the CLI catches it (a scheduler stopping a task that just
    started): exit 130, a whole report saying ``interrupted``, nothing published. Before
    the interpreter has run the CLI's first lines nothing can catch it (the default action);
    the test starts counting when /proc says it is caught."""
    sim_config = SimulatorConfig(seed=33, records=2_000, tokens=frozenset({TOKEN}), latency_ms=50)
    report = tmp_path / "report.json"
    out = tmp_path / "out"
    with simulator_in_thread(sim_config) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HSS_")}
        env["HSS_AUTH_TOKEN"] = TOKEN
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "connector.cli", "sync", "--endpoint", sim.base_url),
                *("--project-id", PROJECTS[0], "--out", str(out), "--report", str(report)),
                *("--rate", "5", "--progress", "off"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 30
        while not _catches_sigterm(process.pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert process.poll() is None, process.communicate()
        time.sleep(delay_ms / 1000)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    written = orjson.loads(report.read_bytes())
    assert (written["status"], written["exit_code"]) == ("interrupted", 130), written
    assert _visible(out) == []
    assert not Path(f"{out}.connector/staging").exists() or not any(
        Path(f"{out}.connector/staging").iterdir()
    )


def test_sigterm_is_caught_before_the_heavy_imports() -> None:
    """``python -m connector.cli`` and the ``hss-images`` script import the module, then call
    ``console``, which catches SIGTERM: the module must not import pyarrow or aiohttp (a
    second of CPU on a busy host, during which SIGTERM would kill the run with no report)."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, connector.cli; "
            "print(sorted({'pyarrow', 'aiohttp', 'connector.job.pipeline'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout
