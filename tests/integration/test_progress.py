"""The progress line counts what the report counts, over real sockets; and ``--log-format
json`` carries the run and the project on every record, for log pipelines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector import FetchSettings
from connector.simulator import DriftConfig, SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import EVERY_EP, FAST_RETRY, TOKEN, config, sync

PROJECTS = {"p-large": 2_345, "p-medium": 1_000, "p-small": 57}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[_Records]:
    logger = logging.getLogger("connector")
    handler = _Records()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _final_progress(records: list[logging.LogRecord]) -> Any:
    [final] = [r for r in records if getattr(r, "final", False)]
    return final


@pytest.mark.parametrize("drift", [False, True], ids=["steady", "changing-list"])
def test_the_final_progress_count_is_the_reports_count(
    tmp_path: Path, captured: _Records, drift: bool
) -> None:
    """Page size 50 over three projects: every page after the first repeats a record of the
    page before it (the overlap that proves nothing moved). The old line counted those
    repeats; the final count must be the report's ``records_fetched``, and on a steady list
    also what was written."""
    sim_config = SimulatorConfig(
        seed=12,
        project_records=PROJECTS,
        tokens=frozenset({TOKEN}),
        drift=DriftConfig(every_n_requests=4, inserts=2, deletes=1, moves=1, max_events=6)
        if drift
        else DriftConfig(),
    )
    with simulator_in_thread(sim_config) as sim:
        cfg = replace(
            config(
                sim.base_url,
                tmp_path / "lake",
                tuple(PROJECTS),
                fetch=FetchSettings(page_size=50, rate=0, concurrency=4, retry=FAST_RETRY),
            ),
            progress="log",
        )
        report = sync(cfg)
        served = {p: sim.inventory.total(p, **EVERY_EP) for p in PROJECTS}

    assert report.status == "success", report.summary()
    data = report.to_dict()
    final = _final_progress(captured.records)
    pages = sum(p.pages for p in report.projects.values())
    assert pages > 2 * len(PROJECTS)  # overlap records were read, many times
    assert final.records == data["records_fetched"]
    assert final.total == sum(p.total_num or 0 for p in report.projects.values())
    assert (final.projects_started, final.projects) == (3, 3)
    assert final.pages == pages
    assert final.run_id == report.run_id and final.project is None
    assert final.getMessage().startswith(f"progress (final): {final.records:,} of ~")
    if drift:
        assert report.drift_detected
        assert final.records == (
            data["records_written"] + data["records_quarantined"] + data["duplicates_removed"]
        )
    else:
        assert final.records == data["records_written"] == sum(served.values())
        assert final.total == final.records and final.percent == 100.0
    published = [r for r in captured.records if "records published" in r.getMessage()]
    assert sorted(r.project for r in published) == sorted(PROJECTS)  # set by each task
    assert {r.run_id for r in captured.records} == {report.run_id}


def test_json_log_lines_carry_the_run_the_project_and_the_error_fields(
    cli: Cli, tmp_path: Path
) -> None:
    """The real CLI with ``--log-format json``: every stderr line is one JSON object; the
    progress line's count is the report's; a failing project's line has its HTTP status and
    error_code; the token appears nowhere."""
    from connector.simulator import FaultConfig, ProjectFailure

    sim_config = SimulatorConfig(
        seed=3,
        project_records={"p-good": 700, "p-denied": 100},
        tokens=frozenset({TOKEN}),
        faults=FaultConfig(project_failures={"p-denied": ProjectFailure(status=403)}),
    )
    report_path = tmp_path / "report.json"
    with simulator_in_thread(sim_config) as sim:
        result = cli(
            "sync",
            "--endpoint",
            sim.base_url,
            "--project-id",
            "p-good",
            "--project-id",
            "p-denied",
            "--out",
            str(tmp_path / "lake"),
            "--report",
            str(report_path),
            "--page-size",
            "50",
            "--rate",
            "0",
            "--log-format",
            "json",
            env={"HSS_AUTH_TOKEN": TOKEN},
        )

    assert result.returncode == 4, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    lines = [orjson.loads(line) for line in result.stderr.splitlines()]
    report = orjson.loads(report_path.read_bytes())
    for line in lines:
        assert {"time", "level", "logger", "message", "run_id", "project"} <= line.keys()
        assert line["run_id"] == report["run_id"]
    [failed] = [line for line in lines if line["level"] == "ERROR" and line["project"]]
    assert failed["project"] == "p-denied"
    assert (failed["status"], failed["error_code"], failed["offset"]) == (403, "HSS.0013", 0)
    assert failed["error_type"] == "AuthError" and failed["exit_code"] == 3
    [published] = [line for line in lines if "records published" in line["message"]]
    assert (published["project"], published["records"]) == ("p-good", 700)
    [final] = [line for line in lines if line.get("final")]
    assert final["records"] == report["records_fetched"] == 700
    summary = lines[-1]
    assert (summary["status"], summary["exit_code"]) == ("partial", 4)
    assert summary["records_written"] == report["records_written"] == 700
