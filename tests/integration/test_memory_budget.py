"""Projects at once follow from memory: the budget, the estimate against a measured peak,
and exact output under a budget that lets only a few read at once (real simulator)."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from pathlib import Path

import pytest

from connector.job.memory import estimate
from connector.job.pipeline import CHUNK_RECORDS
from connector.lake.writer import ROW_GROUP_ROWS
from connector.simulator import SimulatorConfig, simulator_in_thread

from .helpers import EVERY_EP, TOKEN, config, read_rows, sync

MiB = 2**20
ROOT = Path(__file__).resolve().parents[2]


def _estimate(total: int, concurrency: int, page_size: int = 200) -> int:
    return estimate(
        total,
        page_size=page_size,
        concurrency=concurrency,
        chunk_records=CHUNK_RECORDS,
        row_group_rows=ROW_GROUP_ROWS,
    ).total


def test_many_small_projects_under_a_small_budget_all_finish_exactly(tmp_path: Path) -> None:
    rng = random.Random(11)
    sizes = {f"p{n:02d}": rng.randint(150, 1_500) for n in range(12)}
    budget = 32 * MiB
    with simulator_in_thread(
        SimulatorConfig(seed=4, project_records=sizes, tokens=frozenset({TOKEN}))
    ) as sim:
        report = sync(config(sim.base_url, tmp_path, tuple(sizes), memory_limit=budget))
        totals = {p: sim.inventory.total(p, **EVERY_EP) for p in sizes}
    assert report.status == "success", report.summary()
    assert (report.memory_budget, report.memory_budget_origin) == (budget, "memory_limit")
    rows = read_rows(tmp_path)
    for project, total in totals.items():
        result = report.projects[project]
        assert result.records_written == total > 0
        assert sum(1 for r in rows if r["project_id"] == project) == total
        assert result.memory_estimate == _estimate(total, concurrency=6)
    # no more read at once than the smallest estimates fit in the budget
    estimates = sorted(p.memory_estimate or 0 for p in report.projects.values())
    fit = max(k for k in range(len(estimates) + 1) if sum(estimates[:k]) <= budget)
    assert 1 <= report.projects_reading_max <= max(fit, 1) < len(sizes)


def test_a_project_bigger_than_the_budget_reads_alone_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sizes = {"big1": 900, "big2": 700, "big3": 400}
    with simulator_in_thread(
        SimulatorConfig(seed=5, project_records=sizes, tokens=frozenset({TOKEN}))
    ) as sim:
        with caplog.at_level(logging.INFO, logger="connector"):
            report = sync(config(sim.base_url, tmp_path, tuple(sizes), memory_limit=MiB))
        totals = {p: sim.inventory.total(p, **EVERY_EP) for p in sizes}
    assert report.status == "success", report.summary()
    assert report.projects_reading_max == 1
    assert {p: r.records_written for p, r in report.projects.items()} == totals
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(sizes), warnings
    for line in warnings:
        assert "exceed the memory budget 1 MiB: it reads alone" in line, line
        assert "reads alone; memory_limit raises the budget" in line
        assert "\n" not in line
    started = [r.getMessage() for r in caplog.records if "memory budget" in r.getMessage()]
    assert any("memory budget 1 MiB (memory_limit)" in line for line in started), started


def test_the_default_budget_comes_from_the_machine_and_the_cap_still_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sizes = {"a": 450, "b": 300, "c": 250}
    with (
        simulator_in_thread(
            SimulatorConfig(seed=6, project_records=sizes, tokens=frozenset({TOKEN}))
        ) as sim,
        caplog.at_level(logging.INFO, logger="connector"),
    ):
        report = sync(config(sim.base_url, tmp_path, tuple(sizes), parallel_projects=1))
    assert report.status == "success", report.summary()
    assert report.projects_reading_max == 1  # the budget holds all three: the cap decides
    assert report.memory_budget >= MiB
    assert report.memory_budget_origin.startswith("a quarter of ")
    data = json.loads(report.to_json())
    assert data["memory_budget"] == report.memory_budget
    assert data["projects_reading_max"] == 1
    assert data["projects"]["a"]["memory_estimate"] == _estimate(sizes["a"], concurrency=6)
    started = [r.getMessage() for r in caplog.records if "memory budget" in r.getMessage()]
    assert len(started) == 1 and "a quarter of " in started[0], started
    assert "at most 1 project(s) at once" in started[0]
    assert f"({report.memory_budget_origin}): at most 1 project(s) read at once" in (
        report.summary()
    )


@pytest.mark.process
@pytest.mark.parametrize(
    ("records", "concurrency"), [(2_000, 4), (80_000, 16)], ids=["small", "past a row group"]
)
def test_the_estimate_covers_the_measured_peak_of_a_real_run(
    tmp_path: Path, records: int, concurrency: int
) -> None:
    """One project synced in a fresh process, its Python allocations traced and Arrow's
    pool peak read (``memory_probe``). tracemalloc counts the bytes asked for, not the
    allocator's own: the process's RSS grew 1.8x the traced figure for the same parsed
    pages (connector.job.memory), so the traced Python peak counts 1.8x; Arrow's pool
    reports what it really holds."""
    projects = {"warmup": 30, "measured": records}
    with simulator_in_thread(
        SimulatorConfig(seed=2, project_records=projects, tokens=frozenset({TOKEN}))
    ) as sim:
        probe = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.integration.memory_probe",
                sim.base_url,
                str(tmp_path),
                "measured",
                str(concurrency),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
    assert probe.returncode == 0, probe.stderr[-3000:]
    measured = json.loads(probe.stdout.strip().splitlines()[-1])
    assert (measured["status"], measured["records"]) == ("success", records)
    assert measured["estimate"] == _estimate(records, concurrency)
    peak = 1.8 * measured["python_peak"] + measured["arrow_peak"]
    assert measured["arrow_peak"] > 0 and measured["python_peak"] > 0
    assert measured["estimate"] >= peak, measured
