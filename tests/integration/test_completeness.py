"""Completeness against a simulator that behaves like a real gateway, over real sockets.

Every case ends in one of two outcomes, checked by natural key against the simulator's own
record of the truth: exact output (every record present for the whole crawl exactly once),
or a loud failure with nothing published. ``FIGURES`` collects each case's numbers for the
fault matrix in the README (``pytest -s`` prints them).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connector import FetchSettings, RunReport
from connector.settings.config import TotalTolerance
from connector.simulator import (
    DriftConfig,
    FaultConfig,
    GatewayConfig,
    SimulatorConfig,
    natural_key,
    simulator_in_thread,
)
from connector.source.paging import pages_needed
from tests.commands import Cli

from .helpers import EVERY_EP, FAST_RETRY, TOKEN, config, sync

PROJECT = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
KEY = "image_id, image_digest, image_name, image_version, host_id, agent_id"

CASES: dict[str, dict[str, Any]] = {
    "page cap 100 of 200": {"gateway": GatewayConfig(page_cap=100)},
    "short pages 5%": {"gateway": GatewayConfig(short_page_rate=0.05)},
    "empty pages 5%": {"gateway": GatewayConfig(empty_page_rate=0.05)},
    "missing data_list 5%": {"gateway": GatewayConfig(missing_data_list_rate=0.05)},
    # accepted on purpose (--total-num-tolerance): without it, a loud failure (test_proof)
    "total_num lags 300, jitters 40": {"gateway": GatewayConfig(total_skew=-300, total_jitter=40)},
    "total_num leads 500": {"gateway": GatewayConfig(total_skew=500)},
    "swapped across boundaries 5%": {"gateway": GatewayConfig(swap_rate=0.05)},
    "moved to the front, 1 per 2 requests": {
        "drift": DriftConfig(every_n_requests=2, moves=1, max_events=20)
    },
    "one image on several hosts 30%": {"shared_image_rate": 0.3},
}
FIGURES: dict[str, dict[str, Any]] = {}


def _keys(out: Path) -> list[tuple[Any, ...]]:
    if not list(out.glob("**/*.parquet")):
        return []
    return duckdb.sql(
        f"select {KEY} from read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()


def _check(out: Path, sim: Any, report: RunReport, name: str) -> str:
    """'exact' or 'loud', with the figures; anything else fails the test."""
    project = report.projects[PROJECT]
    written = _keys(out)
    stable = {natural_key(r) for r in sim.inventory.stable_records(PROJECT, **EVERY_EP)}
    ever = {natural_key(r) for r in sim.inventory.ever_records(PROJECT, **EVERY_EP)}
    FIGURES[name] = {
        "served": sim.stats.project(PROJECT).records_served,
        "requests": project.requests,
        "pages re-read": project.pages_reread,
        "end probes": project.end_probes,
        "lost": len(stable - set(written)) if report.status == "success" else 0,
        "outcome": report.status if report.status != "failed" else "loud failure",
    }
    if report.status == "failed":
        assert project.error_type == "DataLossError", project.error
        assert report.exit_code == 5 and not written, "a failed project published something"
        return "loud"
    assert report.status == "success", report.summary()
    assert len(written) == len(set(written)), "a record was written twice"
    assert stable <= set(written), f"lost {len(stable - set(written))} stable records"
    assert set(written) <= ever, "records that never existed"
    assert project.records_fetched == (
        project.records_written + project.records_quarantined + project.duplicates_removed
    )
    return "exact"


def _run(tmp_path: Path, sim_config: SimulatorConfig, **fetch: Any) -> tuple[Any, RunReport]:
    settings = replace(FetchSettings(rate=0, concurrency=6, retry=FAST_RETRY), **fetch)
    with simulator_in_thread(sim_config) as sim:
        report = sync(config(sim.base_url, tmp_path, (PROJECT,), fetch=settings))
        return sim, report


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_gateway_behaviour_alone_is_exact(tmp_path: Path, name: str) -> None:
    sim_config = SimulatorConfig(seed=41, records=5_000, tokens=frozenset({TOKEN}), **CASES[name])
    gateway = CASES[name].get("gateway")
    miscount = abs(gateway.total_skew) + gateway.total_jitter if gateway else 0
    with simulator_in_thread(sim_config) as sim:
        settings = FetchSettings(
            rate=0,
            concurrency=6,
            retry=FAST_RETRY,
            total_tolerance=TotalTolerance(records=miscount),
        )
        report = sync(config(sim.base_url, tmp_path, (PROJECT,), fetch=settings))
        assert _check(tmp_path, sim, report, name) == "exact"
        project = report.projects[PROJECT]
        behaviours = sim.stats.project(PROJECT).behaviours
        if name.startswith("page cap"):
            assert project.page_size == 100
            assert not project.drift_detected  # adapted, not repaired
        elif name.startswith(("short", "empty", "missing", "swapped")):
            assert sum(behaviours.values()) > 0, "the behaviour never happened"
            assert project.pages_reread > 0
        elif name.startswith("total_num"):
            assert project.end_probes >= 2  # the end was read, and read again
            assert project.total_num_mismatch is not None
            assert project.total_num_mismatch["records"] == 5_000
        elif name.startswith("moved"):
            assert sum(len(e.moved) for e in sim.inventory.drift_events(PROJECT)) == 20
            assert project.repairs.get("shift", 0) > 0
        else:  # the same image on several hosts stays several rows
            rows = duckdb.sql(
                f"select image_id, count(*) from read_parquet('{tmp_path}/**/*.parquet') "
                "group by 1 having count(*) > 1"
            ).fetchall()
            assert rows


def test_a_project_read_without_trouble_costs_one_request_more(tmp_path: Path) -> None:
    """The pages the list needs, and one read past its end."""
    sim_config = SimulatorConfig(seed=42, records=5_000, tokens=frozenset({TOKEN}))
    _sim, report = _run(tmp_path, sim_config)
    project = report.projects[PROJECT]
    assert project.total_num == 5_000
    assert project.requests == pages_needed(project.total_num, 200) + 1
    assert project.end_probes == 1
    assert project.pages_reread == 0 and not project.drift_detected
    assert project.total_num_mismatch is None


@pytest.mark.slow
def test_all_together_with_faults_and_throttling(tmp_path: Path) -> None:
    sim_config = SimulatorConfig(
        seed=43,
        records=6_000,
        tokens=frozenset({TOKEN}),
        rate=60,
        burst=4,
        shared_image_rate=0.2,
        gateway=GatewayConfig(
            page_cap=150,
            short_page_rate=0.03,
            empty_page_rate=0.02,
            missing_data_list_rate=0.02,
            swap_rate=0.03,
            total_skew=-120,
            total_jitter=30,
        ),
        faults=FaultConfig(http_503_rate=0.03, reset_rate=0.02, invalid_json_rate=0.02),
        drift=DriftConfig(every_n_requests=3, inserts=2, moves=1, max_events=15),
    )
    tolerance = TotalTolerance(records=120 + 30)
    sim, report = _run(tmp_path, sim_config, rate=200, burst=10, total_tolerance=tolerance)
    assert _check(tmp_path, sim, report, "all together, with faults and throttling") == "exact"
    project = report.projects[PROJECT]
    assert project.throttled > 0 and project.retries > 0 and project.page_size == 150


def test_a_list_that_never_holds_still_fails_loudly_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    """Records keep moving to the front for ever: nothing can be proven, nothing is
    published, the exit code is 5 and the error says what could not be proven where."""
    sim_config = SimulatorConfig(
        seed=44,
        records=3_000,
        tokens=frozenset({TOKEN}),
        drift=DriftConfig(every_n_requests=1, moves=1),
    )
    with simulator_in_thread(sim_config) as sim:
        result = cli(
            "sync",
            "--endpoint",
            sim.base_url,
            "--project-id",
            PROJECT,
            "--out",
            str(tmp_path / "lake"),
            "--rate",
            "0",
            "--max-repair-rounds",
            "5",
            "--report",
            str(tmp_path / "report.json"),
            env={"HSS_AUTH_TOKEN": TOKEN},
        )
    assert result.returncode == 5, result.stderr
    assert "DataLossError" in result.stderr
    assert "cannot prove the crawl complete after 5 rounds" in result.stderr
    assert "offset" in result.stderr and "pages re-read" in result.stderr
    assert not list((tmp_path / "lake").glob("**/*.parquet"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and report["exit_code"] == 5
    FIGURES["moved to the front for ever"] = {
        "served": sim.stats.project(PROJECT).records_served,
        "requests": report["projects"][PROJECT]["requests"],
        "pages re-read": report["projects"][PROJECT]["pages_reread"],
        "end probes": report["projects"][PROJECT]["end_probes"],
        "lost": 0,
        "outcome": "loud failure (exit 5)",
    }


def test_print_the_fault_matrix() -> None:
    """Runs last in this module: the rows of the README's fault matrix (pytest -s)."""
    for name, row in FIGURES.items():
        cells = " | ".join(
            str(row[k])
            for k in ("served", "requests", "pages re-read", "end probes", "lost", "outcome")
        )
        print(f"| {name} | {cells} |")
