"""One project's failure, whatever its cause, is that project's alone; the report is always
written (success, partial failure, any error, SIGINT/SIGTERM); no traceback without -v."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import TOKEN, read_rows
from .tiny_server import Request, error, records, tiny_server

HEALTHY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
BROKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


def _sync(cli: Cli, base_url: str, out: Path, *projects: str, extra: tuple[str, ...] = ()) -> Any:
    out.mkdir(parents=True, exist_ok=True)
    args = ["sync", "--out", str(out / "lake"), "--endpoint", base_url, "--rate", "0"]
    args += ["--page-size", "10", "--report", str(out / "report.json"), *extra]
    for project in projects:
        args += ["--project-id", project]
    return cli(*args, env={"HSS_AUTH_TOKEN": TOKEN}, timeout=60)


def test_an_unexpected_error_fails_only_its_project(cli: Cli, tmp_path: Path) -> None:
    """A record whose unknown field nests 300 deep cannot be kept as extra_fields JSON
    (orjson: "Recursion limit reached"); it fails its project, not the run."""
    broken = records("broken", 30)
    broken[17]["deep_unknown_field"] = _nested(300)
    inventory = {HEALTHY: records("healthy", 45), BROKEN: broken}
    with tiny_server(inventory) as server:
        result = _sync(cli, server.base_url, tmp_path, HEALTHY, BROKEN)

    assert result.returncode == 4, result.stderr  # partial: the healthy project published
    assert "Traceback" not in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "partial" and report["exit_code"] == 4
    assert report["projects"][HEALTHY]["status"] == "published"
    failed = report["projects"][BROKEN]
    assert failed["status"] == "failed" and failed["error_type"] == "TypeError"
    assert "Recursion limit reached" in failed["error"]
    assert "converting records" in failed["error"]  # where it happened
    assert "\n" not in failed["error"]
    assert failed["records_fetched"] == 30  # everything was read before it failed
    line = next(line for line in result.stderr.splitlines() if f"{BROKEN} failed" in line)
    assert "TypeError: Recursion limit reached" in line
    rows = read_rows(tmp_path / "lake")
    assert len(rows) == 45 and {r["project_id"] for r in rows} == {HEALTHY}


def test_the_traceback_is_there_with_verbose(cli: Cli, tmp_path: Path) -> None:
    broken = records("broken", 12)
    broken[3]["deep_unknown_field"] = _nested(300)
    with tiny_server({BROKEN: broken}) as server:
        quiet = _sync(cli, server.base_url, tmp_path / "quiet", BROKEN)
        verbose = _sync(cli, server.base_url, tmp_path / "verbose", BROKEN, extra=("-v",))
    assert quiet.returncode == verbose.returncode == 1, quiet.stderr + verbose.stderr
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in verbose.stderr and "orjson" in verbose.stderr


def test_records_fetched_counts_what_was_read_before_a_failure(cli: Cli, tmp_path: Path) -> None:
    """Ten pages read, then the eleventh is refused: the report says 91 records were read
    (ten records on the first page, nine new ones on each of the nine after it)."""

    async def refuse_page_eleven(request: Request) -> Any:
        if request.offset >= 10 * 9:
            return error(403, "HSS.0013", "Insufficient permissions to access the resource.")
        return None

    with tiny_server({BROKEN: records("big", 500)}, refuse_page_eleven) as server:
        result = _sync(cli, server.base_url, tmp_path, BROKEN, extra=("--concurrency", "1"))
    assert result.returncode == 3, result.stderr
    project = json.loads((tmp_path / "report.json").read_text())["projects"][BROKEN]
    assert project["error_type"] == "AuthError" and project["pages"] == 10
    assert project["records_fetched"] == 10 + 9 * 9


def test_a_run_that_stops_at_start_up_still_writes_its_report(cli: Cli, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = cli(
        "sync",
        "--project-id",
        HEALTHY,
        "--out",
        "nosuchscheme://bucket/lake",
        "--endpoint",
        "http://127.0.0.1:9",
        "--report",
        str(report_path),
        env={"HSS_AUTH_TOKEN": TOKEN},
    )
    assert result.returncode == 2, result.stderr
    assert "ConfigError: --out: no filesystem for nosuchscheme://" in result.stderr
    report = json.loads(report_path.read_text())
    assert (report["status"], report["exit_code"], report["error_type"]) == (
        "failed",
        2,
        "ConfigError",
    )
    assert report["finished_at"] and report["projects"] == {}


def test_a_report_folder_that_does_not_exist_is_refused_before_any_request(
    cli: Cli,
    tmp_path: Path,
) -> None:
    with simulator_in_thread(SimulatorConfig(records=50, tokens=frozenset({TOKEN}))) as sim:
        result = cli(
            "sync",
            "--project-id",
            HEALTHY,
            "--out",
            str(tmp_path / "lake"),
            "--endpoint",
            sim.base_url,
            "--report",
            str(tmp_path / "no" / "such" / "folder" / "report.json"),
            env={"HSS_AUTH_TOKEN": TOKEN},
        )
        requests = sim.stats.requests
    assert result.returncode == 2, result.stderr
    assert "ConfigError: --report: the folder" in result.stderr
    assert "does not exist" in result.stderr
    assert requests == 0
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.process
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_writes_its_report(tmp_path: Path, how: signal.Signals) -> None:
    report_path = tmp_path / "report.json"
    # 51 pages each: the project that started first is read first (the rate limiter serves
    # it before the other), and neither may be finished by the 20th request
    sim_config = SimulatorConfig(seed=31, records=10_000, tokens=frozenset({TOKEN}), latency_ms=20)
    with simulator_in_thread(sim_config) as sim:
        args = ["sync", "--out", str(tmp_path / "lake"), "--endpoint", sim.base_url]
        args += ["--rate", "15", "--report", str(report_path)]
        args += ["--project-id", HEALTHY, "--project-id", BROKEN]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HSS_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "HSS_AUTH_TOKEN": TOKEN},
        )
        deadline = time.monotonic() + 30
        while sim.stats.requests < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be interrupted"
        process.send_signal(how)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(report_path.read_text())
    assert (report["status"], report["exit_code"]) == ("interrupted", 130)
    assert report["finished_at"]
    assert {p["status"] for p in report["projects"].values()} == {"interrupted"}
    assert sum(p["requests"] for p in report["projects"].values()) >= 20
