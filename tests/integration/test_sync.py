"""The core promises, against the simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pytest

import connector
from connector import FetchSettings, Filters
from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread
from tests.commands import Cli, spawn_cli

from .helpers import (
    EVERY_EP,
    FAST_RETRY,
    TOKEN,
    as_api_record,
    config,
    read_rows,
    served,
    sync,
    with_fetch,
)

PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")


def test_full_sync_equals_the_inventory_field_by_field(tmp_path: Path) -> None:
    sim_config = SimulatorConfig(
        seed=3, project_records={PROJECTS[0]: 2_345, PROJECTS[1]: 611}, tokens=frozenset({TOKEN})
    )
    with simulator_in_thread(sim_config) as sim:
        report = sync(config(sim.base_url, tmp_path, PROJECTS))
        expected = {p: sim.inventory.records(p, **EVERY_EP) for p in PROJECTS}
    assert report.status == "success", report.summary()
    for project in PROJECTS:
        rows = read_rows(tmp_path, f"project_id = '{project}'")
        got = sorted((as_api_record(r) for r in rows), key=lambda r: r["image_id"])
        want = sorted((served(r) for r in expected[project]), key=lambda r: r["image_id"])
        assert len(got) == len(want) > 0
        assert got == want
        assert report.projects[project].records_written == len(want)
    assert any(r["image_size"] > 2**32 for r in read_rows(tmp_path))


def test_output_types_as_documented_for_duckdb_and_polars(tmp_path: Path) -> None:
    with simulator_in_thread(SimulatorConfig(records=300, tokens=frozenset({TOKEN}))) as sim:
        today = datetime.now(UTC).date()
        sync(config(sim.base_url, tmp_path, PROJECTS, snapshot_date=today))
        expected = sum(sim.inventory.total(p, **EVERY_EP) for p in PROJECTS)
    described = duckdb.sql(
        f"describe select * from read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    names = [row[0] for row in described]
    types = {row[0]: row[1] for row in described}
    assert types["image_size"] == "BIGINT"
    assert types["vul_num"] == "BIGINT"
    assert types["latest_update_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["ingested_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["snapshot_date"] == "DATE"
    assert types["project_id"] == "VARCHAR"
    assert names.count("project_id") == 1 and names.count("snapshot_date") == 1
    frame = pl.scan_parquet(f"{tmp_path}/**/*.parquet", hive_partitioning=True).collect()
    assert frame.schema["latest_scan_time"] == pl.Datetime("ms", "UTC")
    assert frame.schema["image_size"] == pl.Int64
    assert frame.schema["snapshot_date"] == pl.Date
    assert frame.height == expected
    assert set(frame["snapshot_date"].to_list()) == {today}
    assert frame.columns.count("project_id") == 1


def test_rerun_of_a_snapshot_replaces_it_without_duplicates(tmp_path: Path) -> None:
    with simulator_in_thread(SimulatorConfig(records=450, tokens=frozenset({TOKEN}))) as sim:
        first = sync(config(sim.base_url, tmp_path, PROJECTS))
        second = sync(config(sim.base_url, tmp_path, PROJECTS))
        expected = sum(sim.inventory.total(p, **EVERY_EP) for p in PROJECTS)
    assert first.run_id != second.run_id
    rows = read_rows(tmp_path)
    assert len(rows) == expected
    assert {r["run_id"] for r in rows} == {second.run_id}
    assert len(list(tmp_path.rglob("*.parquet"))) == 2
    assert not Path(f"{tmp_path}.connector/staging").exists()


def _filter_cases(sim: Any, project: str) -> list[dict[str, Any]]:
    records = sim.inventory.records(project, **EVERY_EP)
    hidden = sim.inventory.hidden_attributes(project, **EVERY_EP)
    sample = next(r for r in records if r.get("severity_level") and r.get("latest_scan_time"))
    extra = next(h for h in hidden.values() if h.apps)
    with_container = next(h for h in hidden.values() if h.container_ids and h.pod_ids)
    times = sorted(r["latest_update_time"] for r in records)
    scans = sorted(r["latest_scan_time"] for r in records if r.get("latest_scan_time"))
    return [
        {"enterprise_project_id": "0"},  # the API's default: the default enterprise project
        {"image_name": sample["image_name"][1:4]},
        {"image_name": sample["image_name"], "image_version": sample["image_version"]},
        {"scan_status": "waiting_for_scan"},
        {"scan_status": "success"},
        {"local_image_type": "swr_image"},
        {"image_size": sample["image_size"]},
        {"start_latest_update_time": times[10], "end_latest_update_time": times[60]},
        {"start_latest_scan_time": scans[5], "end_latest_scan_time": scans[40]},
        {"has_vul": True},
        {"has_vul": False},
        {"host_name": sample["host_name"][:5]},
        {"host_id": sample["host_id"]},
        {"host_ip": extra.host_ip},
        {"container_id": with_container.container_ids[0]},
        {"container_name": with_container.container_names[0][:4]},
        {"pod_id": with_container.pod_ids[0]},
        {"pod_name": with_container.pod_names[0][:3]},
        {"has_container": False},
        {"app_name": extra.apps[0][:3]},
        {"has_container": True},
    ]


def test_every_filter_reaches_the_server_and_filters_as_documented(tmp_path: Path) -> None:
    project = PROJECTS[0]
    with simulator_in_thread(
        SimulatorConfig(seed=11, records=1_500, tokens=frozenset({TOKEN}))
    ) as sim:
        cases = _filter_cases(sim, project)
        unfiltered = sim.inventory.total(project, **EVERY_EP)
        covered = {k for case in cases for k in case}
        assert covered >= {f for f in Filters.__dataclass_fields__}, "a filter is not tested"
        for number, case in enumerate(cases):
            out = tmp_path / f"case{number}"
            report = sync(config(sim.base_url, out, (project,), filters=Filters(**case)))
            assert report.status == "success", (case, report.summary())
            want = sorted(
                r["image_id"] for r in sim.inventory.records(project, **{**EVERY_EP, **case})
            )
            got = sorted(r["image_id"] for r in read_rows(out))
            assert got == want, case
            # the filter changed what the server returned, so it reached the server
            assert len(want) != unfiltered, case


def test_throttling_and_transient_faults_are_retried_and_the_result_is_exact(
    tmp_path: Path,
) -> None:
    faults = FaultConfig(
        http_500_rate=0.05, http_503_rate=0.05, reset_rate=0.03, truncate_rate=0.03
    )
    sim_config = SimulatorConfig(
        seed=5, records=3_000, tokens=frozenset({TOKEN}), rate=40, burst=4, faults=faults
    )
    with simulator_in_thread(sim_config) as sim:
        cfg = config(sim.base_url, tmp_path, (PROJECTS[0],))
        report = sync(with_fetch(cfg, rate=200, burst=20, concurrency=8))
        want = sorted(served(r)["image_id"] for r in sim.inventory.records(PROJECTS[0], **EVERY_EP))
        server_throttled = sim.stats.throttled
        injected = sum(sim.stats.faults.values())
    assert report.status == "success", report.summary()
    project = report.projects[PROJECTS[0]]
    assert project.throttled > 0 and server_throttled >= project.throttled
    assert project.retries >= project.throttled
    assert "ServerError" in project.retry_reasons
    assert injected > 0 and project.retries - project.throttled >= injected
    assert sorted(r["image_id"] for r in read_rows(tmp_path)) == want
    # How the limiter adapts (burst first when requests leaned on it, then the rate, and
    # recovery once quiet) is pinned on a fake clock in tests/unit/test_limits.py: in a run
    # this short the rate may be back at its ceiling by the end, so it is not asserted here.


def test_bad_token_fails_fast_with_the_full_context(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(SimulatorConfig(records=50, tokens=frozenset({TOKEN}))) as sim:
        result = cli(
            "sync",
            "--project-id",
            PROJECTS[0],
            "--out",
            str(tmp_path),
            "--endpoint",
            sim.base_url,
            env={"HSS_AUTH_TOKEN": "wrong-token-value-123"},
        )
        requests = sim.stats.requests
    assert result.returncode == 3, result.stderr
    assert requests == 1, "authentication failures must not be retried"
    for part in (
        "AuthError",
        f"project {PROJECTS[0]}",
        "offset 0",
        "HTTP 401",
        "APIG.0301",
        "request id",
    ):
        assert part in result.stderr, part
    assert "wrong-token-value-123" not in result.stderr + result.stdout
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_rejected_parameter_fails_fast_with_the_servers_message(cli: Cli, tmp_path: Path) -> None:
    # the server's offset ceiling is lower than the client was told: HTTP 400, HSS.0001
    sim_config = SimulatorConfig(records=400, tokens=frozenset({TOKEN}), max_offset=150)
    with simulator_in_thread(sim_config) as sim:
        result = cli(
            "sync",
            "--project-id",
            PROJECTS[0],
            "--out",
            str(tmp_path),
            "--endpoint",
            sim.base_url,
            "--page-size",
            "100",
            env={"HSS_AUTH_TOKEN": TOKEN},
        )
        requests = sim.stats.requests
    assert result.returncode == 3, result.stderr
    for part in ("InvalidRequestError", "HTTP 400", "HSS.0001", "offset", "request id"):
        assert part in result.stderr, part
    assert requests <= 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--scan-status", "done"], "flag --scan-status: 'done' is not one of"),
        (["--page-size", "500"], "--page-size"),
        (["--start-latest-update-time", "5"], "go together"),
        (["--has-vul", "yes"], "true or false"),
        (["--image-version", "1.0"], "--image-name"),
        (["--endpoint", "http://10.1.2.3"], "loopback"),
        (["--region", "mars-1"], "unknown region"),
        (["--max-quarantined", "lots"], "--max-quarantined"),
        (["--snapshot-date", "28/11/2026"], "2026-11-28"),
    ],
)
def test_bad_flags_fail_before_any_request(
    cli: Cli, tmp_path: Path, flags: list[str], message: str
) -> None:
    base = ["sync", "--project-id", "p1", "--out", str(tmp_path)]
    if "--endpoint" not in flags and "--region" not in flags:
        base += ["--endpoint", "http://127.0.0.1:9"]
    result = cli(*base, *flags, env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


@pytest.mark.process
def test_cli_sync_writes_the_report(tmp_path: Path) -> None:
    """The ``sync`` command's smoke test: the real entry point, in a process of its own."""
    report_path = tmp_path / "report.json"
    with simulator_in_thread(SimulatorConfig(records=250, tokens=frozenset({TOKEN}))) as sim:
        result = spawn_cli(
            "sync",
            "--project-id",
            PROJECTS[0],
            "--project-id",
            PROJECTS[1],
            "--out",
            str(tmp_path / "out"),
            "--endpoint",
            sim.base_url,
            "--rate",
            "50",
            "--report",
            str(report_path),
            "--snapshot-date",
            "2026-01-31",
            "--allow-any-snapshot-date",  # a label chosen on purpose: recorded as such
            env={"HSS_AUTH_TOKEN": TOKEN},
        )
    assert result.returncode == 0, result.stderr
    import orjson

    report = orjson.loads(report_path.read_bytes())
    for key in (
        "records_written",
        "records_quarantined",
        "requests",
        "retries",
        "throttled",
        "drift_detected",
        "duration_s",
        "projects",
        "files",
        "started_at",
        "finished_at",
        "connector_version",
        "query",
        "snapshot_date_origin",
    ):
        assert key in report, key
    assert report["snapshot_date_origin"] == "opt-in"
    assert report["query"] == {"enterprise_project_id": "all_granted_eps"}
    assert report["finished_at"] >= report["started_at"]
    assert report["connector_version"] == connector.__version__
    assert report["records_written"] == sum(
        p["records_written"] for p in report["projects"].values()
    )
    assert all("snapshot_date=2026-01-31" in f for f in report["files"])
    assert TOKEN not in report_path.read_text() + result.stderr


def test_fetch_settings_default_to_the_api_maximum_page() -> None:
    assert FetchSettings().page_size == 200
    assert FAST_RETRY.max_attempts > 1


@pytest.mark.process
def test_demo_syncs_the_simulator_and_summarises_the_parquet(tmp_path: Path) -> None:
    """The ``demo`` command's smoke test: the real entry point, in a process of its own."""
    result = spawn_cli("demo", "--out", str(tmp_path / "demo"), "--records", "400", timeout=180)
    assert result.returncode == 0, result.stderr
    for heading in ("Images by scan status:", "Scanned images by severity:", "most vulnerable"):
        assert heading in result.stdout
    rows = read_rows(tmp_path / "demo")
    days: dict[Any, int] = {}
    for row in rows:
        days[row["snapshot_date"]] = days.get(row["snapshot_date"], 0) + 1
    # two days of the simulator: yesterday's inventory, then today's (images came and went)
    yesterday, today = sorted(days)
    assert days[yesterday] == 1_200 and len({r["project_id"] for r in rows}) == 3
    assert f"{days[today]} images in" in result.stdout and f"on {today}" in result.stdout
    assert "What changed since yesterday" in result.stdout


@pytest.mark.slow
def test_a_run_held_back_by_its_concurrency_says_which_value_reaches_the_rate(
    cli: Cli,
    tmp_path: Path,
) -> None:
    """At 80 ms a response one request in flight makes 12 requests/s, not the 40 asked:
    the run says so, with a --concurrency that would reach the rate; a run the rate paces
    does not."""
    sim_config = SimulatorConfig(seed=58, records=2_000, latency_ms=80, tokens=frozenset({TOKEN}))
    with simulator_in_thread(sim_config) as sim:
        args = ["sync", "--endpoint", sim.base_url, "--project-id", PROJECTS[0], "--rate", "40"]
        args += ["--page-size", "100", "--progress", "off"]
        runs = {
            cap: cli(
                *args,
                "--out",
                str(tmp_path / f"c{cap}"),
                "--concurrency",
                str(cap),
                "--report",
                str(tmp_path / f"c{cap}.json"),
                env={"HSS_AUTH_TOKEN": TOKEN},
            )
            for cap in (1, 8)
        }
    for cap, result in runs.items():
        assert result.returncode == 0, result.stderr
        assert len(read_rows(tmp_path / f"c{cap}")) == 2_000
    held = orjson.loads((tmp_path / "c1.json").read_bytes())
    assert held["at_cap_s"] > 0.5 * held["duration_s"], held
    assert "1 request(s) were in flight, as many as --concurrency allows" in runs[1].stderr
    advice = re.search(
        r"allows about (\d+) requests/s, below --rate 40; --concurrency (\d+) would reach it",
        runs[1].stderr,
    )
    assert advice, runs[1].stderr
    assert 5 <= int(advice[1]) <= 12 and 4 <= int(advice[2]) <= 8  # 40/s x 80 ms x 1.25
    paced = orjson.loads((tmp_path / "c8.json").read_bytes())
    assert paced["at_cap_s"] < 0.25 * paced["duration_s"], paced
    assert "as many as --concurrency allows" not in runs[8].stderr
