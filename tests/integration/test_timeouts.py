"""Time: every request has a total deadline, and a page never outlives its retry budget.

A body that trickles in (one byte every second or two) never trips the read timeout, which
only fires when nothing arrives. These tests serve such bodies from a small test-side
server and run the real CLI against it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import TOKEN, read_rows
from .tiny_server import Request, records, tiny_server, trickle

SLOW = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
QUICK = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"

pytestmark = pytest.mark.slow  # each waits out timeouts and retry budgets of seconds


def _sync(cli: Cli, base_url: str, tmp_path: Path, *flags: str, projects: tuple[str, ...]) -> Any:
    args = ["sync", "--out", str(tmp_path / "lake"), "--endpoint", base_url, "--rate", "0"]
    args += ["--page-size", "10", "--report", str(tmp_path / "report.json"), *flags]
    for project in projects:
        args += ["--project-id", project]
    return cli(*args, env={"HSS_AUTH_TOKEN": TOKEN}, timeout=90)


def test_a_trickling_body_is_cut_off_at_the_request_timeout_and_retried(
    cli: Cli, tmp_path: Path
) -> None:
    async def first_attempt_trickles(request: Request) -> Any:
        if request.project_id == SLOW and request.offset == 9 and request.attempt == 1:
            body = b" " * 200 + b"{}"  # would take minutes at a byte a second
            return await trickle(request.http, body, every_s=1.0)
        return None

    with tiny_server({SLOW: records("slow", 40)}, first_attempt_trickles) as server:
        started = time.monotonic()
        result = _sync(
            cli,
            server.base_url,
            tmp_path,
            "--read-timeout",
            "5",
            "--request-timeout",
            "3",
            projects=(SLOW,),
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    project = json.loads((tmp_path / "report.json").read_text())["projects"][SLOW]
    assert project["retry_reasons"] == {"TransportError": 1}
    assert project["records_written"] == 40
    assert len(read_rows(tmp_path / "lake")) == 40
    assert elapsed < 30, elapsed  # one cut-off at 3 s, not a wait for the whole body


def test_a_page_that_always_trickles_ends_within_the_retry_budget(cli: Cli, tmp_path: Path) -> None:
    """--read-timeout 5 and --max-retry-time 8 against a body that never finishes: the slow
    project fails after about 8 s with the budget named; the quick one is published."""

    async def always_trickles(request: Request) -> Any:
        if request.project_id == SLOW:
            return await trickle(request.http, b" " * 500 + b"{}", every_s=2.0)
        return None

    inventory = {SLOW: records("slow", 30), QUICK: records("quick", 25)}
    with tiny_server(inventory, always_trickles) as server:
        started = time.monotonic()
        result = _sync(
            cli,
            server.base_url,
            tmp_path,
            "--read-timeout",
            "5",
            "--max-retry-time",
            "8",
            projects=(SLOW, QUICK),
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert elapsed < 30, elapsed  # 8 s of budget, plus start-up of the CLI and the quick project
    report = json.loads((tmp_path / "report.json").read_text())
    slow = report["projects"][SLOW]
    assert slow["status"] == "failed" and slow["error_type"] == "TransportError"
    assert "--max-retry-time 8s" in slow["error"]
    assert report["projects"][QUICK]["status"] == "published"


def test_a_retry_after_beyond_the_budget_is_named_when_giving_up(cli: Cli, tmp_path: Path) -> None:
    """The gateway asks for 600 s; the budget is 5 s: the error says the server asked."""
    sim_config = SimulatorConfig(
        seed=3, records=200, tokens=frozenset({TOKEN}), rate=1, burst=1, retry_after=600
    )
    with simulator_in_thread(sim_config) as sim:
        result = _sync(cli, sim.base_url, tmp_path, "--max-retry-time", "5", projects=(SLOW,))
    assert result.returncode == 3, result.stderr
    project = json.loads((tmp_path / "report.json").read_text())["projects"][SLOW]
    assert project["error_type"] == "ThrottledError"
    assert "the server asked to wait 600s (Retry-After)" in project["error"]
    assert "--max-retry-time 5s" in project["error"]
