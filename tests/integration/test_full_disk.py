"""A full disk: a small tmpfs mounted for the test, written by the real CLI.

The failing project ends with an ``OutputError`` naming the path, in one line; the other
project is still published; the process never crashes (exit 139/134 were seen with two
projects, when a writer was closed under the thread still writing it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from connector import Filters
from connector.errors import ConfigError
from connector.lake.writer import Output
from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli, spawn_cli

from .helpers import TOKEN, read_rows

SMALL = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
LARGE = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
LARGER = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


def _sync(
    cli: Cli, sim: Any, out: Path, *projects: str, parallel: int
) -> subprocess.CompletedProcess[str]:
    args = ["sync", "--out", str(out), "--endpoint", sim.base_url, "--rate", "0"]
    args += ["--parallel-projects", str(parallel), "--progress", "off"]
    for project in projects:
        args += ["--project-id", project]
    return cli(*args, env={"HSS_AUTH_TOKEN": TOKEN})


def _check_clean_failure(result: subprocess.CompletedProcess[str], out: Path) -> None:
    assert result.returncode in (1, 4), (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr and "ExceptionGroup" not in result.stderr
    failures = [line.strip() for line in result.stderr.splitlines() if "OutputError:" in line]
    assert failures, result.stderr
    for line in failures:
        assert f"{out}.connector/staging/" in line, line
        assert "no space left on device" in line, line


def test_a_project_that_fills_the_disk_fails_alone_with_the_path(
    cli: Cli, small_disk: Path
) -> None:
    out = small_disk / "lake"
    sim_config = SimulatorConfig(
        seed=81, records=300, project_records={LARGE: 30_000}, tokens=frozenset({TOKEN})
    )
    with simulator_in_thread(sim_config) as sim:
        result = _sync(cli, sim, out, SMALL, LARGE, parallel=1)
        expected = sim.inventory.total(SMALL, **dict(Filters().params()))
    assert result.returncode == 4, result.stderr[-3000:]  # partial: one project published
    _check_clean_failure(result, out)
    assert f"{SMALL}: published, {expected} records" in result.stderr
    assert f"{LARGE}: failed" in result.stderr
    assert len(read_rows(out)) == expected
    assert [p.parent.parent.name for p in out.rglob("*.parquet")] == [f"project_id={SMALL}"]
    assert not Path(f"{out}.connector/staging").exists(), "the failed project's files are removed"


@pytest.mark.process
def test_two_projects_on_a_full_disk_never_crash_the_process(small_disk: Path) -> None:
    out = small_disk / "lake"
    sim_config = SimulatorConfig(seed=82, records=20_000, tokens=frozenset({TOKEN}))
    with simulator_in_thread(sim_config) as sim:
        for _ in range(3):  # the crash was seen in two runs of four
            result = _sync(spawn_cli, sim, out, SMALL, LARGE, LARGER, parallel=3)
            _check_clean_failure(result, out)


def test_an_out_that_is_a_mount_point_is_refused_before_any_request(small_disk: Path) -> None:
    """Staging beside OUT would be on another filesystem: no single rename could publish."""
    with pytest.raises(ConfigError, match="root of a mounted filesystem") as refused:
        Output(str(small_disk), "run-1")
    assert f"use a folder inside the mount, e.g. {small_disk}/hss_images" in str(refused.value)
    assert refused.value.exit_code == 2
