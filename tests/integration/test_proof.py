"""The crawl held to its proof, over real sockets, against a simulator that misbehaves.

An end is proven only by an empty read past it whose own ``total_num`` agrees; a total
that disagrees with a proven end fails loudly (``DataLossError``, exit code 5, nothing
published for the project) unless ``--total-num-tolerance`` accepts the difference, and
then the report says so (``total_num_mismatch``). Records no latest_update_time slice can
reach fail loudly, drift or not. Rows identical in every field are one row; rows that share
a natural key and differ fail loudly. Two short first pages of one length are not a cap
when the page later comes back whole.

Every case ends in exact output, checked by natural key (and field by field where rows
could be confused) against the simulator's truth, or in a loud failure with its message's
content and nothing published. Cases run alone, and combined with transport faults and
throttling (those through the library call, whose retries do not wait seconds).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb

from connector import FetchSettings, RunReport
from connector.simulator import (
    DriftConfig,
    FaultConfig,
    GatewayConfig,
    PageCut,
    SimulatorConfig,
    natural_key,
    simulator_in_thread,
)
from tests.commands import Cli

from .helpers import (
    EVERY_EP,
    FAST_RETRY,
    TOKEN,
    as_api_record,
    config,
    read_rows,
    served,
    sync,
)

PROJECT = "7c8d9e0f1a2b3c4d0e6f708192a3b4c0"
KEY = "image_id, image_digest, image_name, image_version, host_id, agent_id"
FAULTS = FaultConfig(http_500_rate=0.2)
"""Often enough that a crawl of a dozen pages and its read past the end sees some."""
THROTTLING = {"rate": 60, "burst": 4}
"""The simulator's limit: below the connector's rate in ``_library``, so 429s come."""


def _simulator(seed: int, records: int, **settings: Any) -> SimulatorConfig:
    return SimulatorConfig(seed=seed, records=records, tokens=frozenset({TOKEN}), **settings)


def _keys(out: Path) -> list[tuple[Any, ...]]:
    if not list(out.glob("**/*.parquet")):
        return []
    return duckdb.sql(
        f"select {KEY} from read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()


def _published(out: Path) -> list[Path]:
    """The Parquet files of PROJECT's partition."""
    return [path for path in out.glob("**/*.parquet") if f"project_id={PROJECT}" in str(path)]


def _number(value: int) -> str:
    """A pattern for ``value`` as a message may print it (4000 or 4,000), as a word of
    its own (not part of an id or of a longer number)."""
    digits = f"{value:,}".replace(",", ",?")
    return rf"(?<![\w.,]){digits}(?!\w|[.,]\d)"


def _assert_names(message: str, *values: int) -> None:
    for value in values:
        assert re.search(_number(value), message), f"{value} not in: {message}"


def _assert_exact(out: Path, sim: Any, *, fields: bool = False) -> None:
    """The output is the simulator's distinct records, each once (by natural key; with
    ``fields``, field by field)."""
    written = _keys(out)
    truth = sim.inventory.distinct_records(PROJECT, **EVERY_EP)
    assert len(written) == len(set(written)), "a record was written twice"
    want = {natural_key(r) for r in truth}
    assert set(written) == want, (
        f"lost {len(want - set(written))}, extra {len(set(written) - want)}"
    )
    if fields:
        got = sorted((as_api_record(r) for r in read_rows(out)), key=lambda r: natural_key(r))
        expected = sorted((served(r) for r in truth), key=lambda r: natural_key(r))
        assert got == expected


def _assert_loud(report: RunReport, out: Path) -> str:
    """The project failed with DataLossError, exit 5, nothing published; its message."""
    project = report.projects[PROJECT]
    assert report.exit_code == 5 and project.status == "failed", report.summary()
    assert project.error_type == "DataLossError", project.error
    assert not _published(out), "a failed project published something"
    return project.error or ""


def _library(
    tmp_path: Path, sim_config: SimulatorConfig, **fetch: Any
) -> tuple[Any, RunReport, Path]:
    """Sync PROJECT through the library call (fast retries); the simulator, report, lake."""
    settings = replace(FetchSettings(rate=0, concurrency=6, retry=FAST_RETRY), **fetch)
    out = tmp_path / "lake"
    with simulator_in_thread(sim_config) as sim:
        report = sync(config(sim.base_url, out, (PROJECT,), fetch=settings))
        return sim, report, out


def _throttled(**fetch: Any) -> dict[str, Any]:
    """Connector settings above the simulator's THROTTLING limit."""
    return {"rate": 200, "burst": 10, **fetch}


class _Cli:
    """``hss-images sync`` of PROJECT (in this process): exit code, stderr, the report."""

    def __init__(self, cli: Cli, tmp_path: Path, sim: Any, *flags: str) -> None:
        self.out = tmp_path / "lake"
        report_path = tmp_path / "report.json"
        result = cli(
            "sync",
            "--endpoint",
            sim.base_url,
            "--project-id",
            PROJECT,
            "--out",
            str(self.out),
            "--rate",
            "0",
            "--report",
            str(report_path),
            *flags,
            env={"HSS_AUTH_TOKEN": TOKEN},
        )
        self.returncode = result.returncode
        self.stderr = result.stderr
        self.report = json.loads(report_path.read_text()) if report_path.exists() else {}

    @property
    def project(self) -> dict[str, Any]:
        return dict(self.report["projects"][PROJECT])

    def assert_loud(self) -> str:
        assert self.returncode == 5, self.stderr
        assert "DataLossError" in self.stderr
        assert not _published(self.out), "a failed project published something"
        assert self.report["status"] == "failed" and self.report["exit_code"] == 5
        return self.stderr

    def assert_success(self) -> None:
        assert self.returncode == 0, self.stderr
        assert self.report["status"] == "success"


def _assert_mismatch(entry: dict[str, Any], total_num: int, records: int) -> None:
    mismatch = entry.get("total_num_mismatch")
    assert isinstance(mismatch, dict), entry
    assert (mismatch["total_num"], mismatch["records"]) == (total_num, records)
    assert isinstance(mismatch["answers"], int) and mismatch["answers"] >= 1


# -- 1. a stale total and a short page that ends exactly at it ---------------------------

STALE = {"gateway": GatewayConfig(total_skew=-1_000, short_at_total=1)}
STALE_PAGE = 150  # 3900..4050 reaches past 4000: the page is cut to end there


def test_a_short_page_ending_at_a_stale_total_is_not_the_end(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(_simulator(81, 5_000, **STALE)) as sim:
        run = _Cli(cli, tmp_path, sim, "--page-size", str(STALE_PAGE))
        assert sim.stats.project(PROJECT).behaviours["short_at_total"] == 1
    _assert_names(run.assert_loud(), 4_000, 5_000)
    assert run.project["status"] == "failed"
    _assert_mismatch(run.project, 4_000, 5_000)


def test_a_stale_total_within_the_tolerance_is_exact_and_reported(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(_simulator(82, 5_000, **STALE)) as sim:
        run = _Cli(
            cli, tmp_path, sim, "--page-size", str(STALE_PAGE), "--total-num-tolerance", "1000"
        )
        run.assert_success()
        assert sim.stats.project(PROJECT).behaviours["short_at_total"] == 1
        _assert_exact(run.out, sim)
    _assert_mismatch(run.project, 4_000, 5_000)


def test_a_stale_total_with_faults_and_throttling_still_fails_loudly(tmp_path: Path) -> None:
    sim_config = _simulator(83, 5_000, faults=FAULTS, **THROTTLING, **STALE)
    sim, report, out = _library(tmp_path, sim_config, **_throttled(page_size=STALE_PAGE))
    assert sim.stats.throttled > 0 and sum(sim.stats.faults.values()) > 0
    assert sim.stats.project(PROJECT).behaviours["short_at_total"] == 1
    _assert_names(_assert_loud(report, out), 4_000, 5_000)


# -- 2. a gateway that stops serving -----------------------------------------------------


def test_a_gateway_that_stops_serving_fails_loudly(tmp_path: Path) -> None:
    sim_config = _simulator(84, 5_000, gateway=GatewayConfig(serve_until=1_000))
    _sim, report, out = _library(tmp_path, sim_config)
    # never exit 0 with the 1,000 records served
    _assert_names(_assert_loud(report, out), 5_000, 1_000)


def test_a_gateway_that_stops_serving_fails_loudly_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(
        _simulator(85, 5_000, gateway=GatewayConfig(serve_until=1_000))
    ) as sim:
        run = _Cli(cli, tmp_path, sim)
    _assert_names(run.assert_loud(), 5_000, 1_000)


def test_a_gateway_that_stops_serving_with_faults_and_throttling(tmp_path: Path) -> None:
    sim_config = _simulator(
        86, 5_000, faults=FAULTS, gateway=GatewayConfig(serve_until=1_000), **THROTTLING
    )
    sim, report, out = _library(tmp_path, sim_config, **_throttled())
    assert sim.stats.throttled > 0 and sum(sim.stats.faults.values()) > 0
    _assert_names(_assert_loud(report, out), 5_000, 1_000)


# -- 3. a total that over-counts ---------------------------------------------------------

LEADS = {"gateway": GatewayConfig(total_skew=10)}


def test_a_total_that_over_counts_fails_loudly(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(_simulator(87, 3_000, **LEADS)) as sim:
        run = _Cli(cli, tmp_path, sim)
    _assert_names(run.assert_loud(), 3_010, 3_000)
    _assert_mismatch(run.project, 3_010, 3_000)


def test_a_total_that_over_counts_within_a_tolerance_of_10_is_exact(
    cli: Cli, tmp_path: Path
) -> None:
    with simulator_in_thread(_simulator(88, 3_000, **LEADS)) as sim:
        run = _Cli(cli, tmp_path, sim, "--total-num-tolerance", "10")
        run.assert_success()
        _assert_exact(run.out, sim)
    _assert_mismatch(run.project, 3_010, 3_000)


def test_a_total_that_over_counts_within_a_tolerance_of_1_percent(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(_simulator(89, 3_000, **LEADS)) as sim:
        run = _Cli(cli, tmp_path, sim, "--total-num-tolerance", "1%")
        run.assert_success()
        _assert_exact(run.out, sim)
    _assert_mismatch(run.project, 3_010, 3_000)


def test_a_total_that_over_counts_with_faults_and_throttling(tmp_path: Path) -> None:
    sim_config = _simulator(90, 3_000, faults=FAULTS, **THROTTLING, **LEADS)
    sim, report, out = _library(tmp_path, sim_config, **_throttled(page_size=100))
    assert sim.stats.throttled > 0 and sum(sim.stats.faults.values()) > 0
    _assert_names(_assert_loud(report, out), 3_010, 3_000)


# -- 4. a list that really shrinks -------------------------------------------------------

SHRINKS = DriftConfig(every_n_requests=2, deletes=3, max_events=10)


def _assert_drift_output(out: Path, sim: Any) -> None:
    """What the drift tests hold a crawl of a changing list to."""
    written = _keys(out)
    stable = {natural_key(r) for r in sim.inventory.stable_records(PROJECT, **EVERY_EP)}
    ever = {natural_key(r) for r in sim.inventory.ever_records(PROJECT, **EVERY_EP)}
    assert len(written) == len(set(written)), "a record was written twice"
    assert stable <= set(written), f"lost {len(stable - set(written))} stable records"
    assert set(written) <= ever, "records that never existed"


def test_a_list_that_shrinks_during_the_crawl_passes(tmp_path: Path) -> None:
    sim, report, out = _library(tmp_path, _simulator(91, 3_000, drift=SHRINKS))
    assert report.exit_code == 0 and report.status == "success", report.summary()
    assert sum(len(e.deleted) for e in sim.inventory.drift_events(PROJECT)) == 30
    _assert_drift_output(out, sim)
    assert report.projects[PROJECT].drift_detected


def test_a_list_that_shrinks_with_faults_and_throttling_passes(tmp_path: Path) -> None:
    sim_config = _simulator(92, 3_000, drift=SHRINKS, faults=FAULTS, **THROTTLING)
    sim, report, out = _library(tmp_path, sim_config, **_throttled())
    assert report.exit_code == 0 and report.status == "success", report.summary()
    assert sim.stats.throttled > 0 and sum(sim.stats.faults.values()) > 0
    _assert_drift_output(out, sim)


# -- 5. records no latest_update_time slice reaches --------------------------------------

CEILING = {"max_offset": 500, "page_size": 100}


def test_records_without_update_time_fail_the_split_loudly(tmp_path: Path) -> None:
    sim_config = _simulator(93, 3_000, max_offset=500, no_update_time=5)
    _sim, report, out = _library(tmp_path, sim_config, **CEILING)
    _assert_names(_assert_loud(report, out), 5)


def test_records_without_update_time_fail_loudly_despite_order_instability(
    tmp_path: Path,
) -> None:
    gateway = GatewayConfig(swap_rate=0.1)
    sim_config = _simulator(94, 3_000, max_offset=500, no_update_time=5, gateway=gateway)
    sim, report, out = _library(tmp_path, sim_config, **CEILING)
    assert sim.stats.project(PROJECT).behaviours["swap"] > 0
    _assert_names(_assert_loud(report, out), 5)


def test_records_without_update_time_fail_loudly_despite_a_tolerated_total(
    cli: Cli,
    tmp_path: Path,
) -> None:
    sim_config = _simulator(
        95, 3_000, max_offset=500, no_update_time=5, gateway=GatewayConfig(total_skew=10)
    )
    with simulator_in_thread(sim_config) as sim:
        run = _Cli(
            cli,
            tmp_path,
            sim,
            "--max-offset",
            "500",
            "--page-size",
            "100",
            "--total-num-tolerance",
            "10",
        )
    _assert_names(run.assert_loud(), 5)


def test_records_without_update_time_with_faults_and_throttling(tmp_path: Path) -> None:
    sim_config = _simulator(
        96, 3_000, max_offset=500, no_update_time=5, faults=FAULTS, **THROTTLING
    )
    sim, report, out = _library(tmp_path, sim_config, **_throttled(**CEILING))
    assert sim.stats.throttled > 0 and sum(sim.stats.faults.values()) > 0
    _assert_names(_assert_loud(report, out), 5)


def test_the_split_with_every_update_time_is_exact(tmp_path: Path) -> None:
    sim, report, out = _library(tmp_path, _simulator(97, 3_000, max_offset=500), **CEILING)
    assert report.exit_code == 0 and report.status == "success", report.summary()
    assert report.projects[PROJECT].slices > 1
    _assert_exact(out, sim)


# -- 6. rows listed twice, rows in conflict ----------------------------------------------


def test_rows_listed_twice_are_one_row(tmp_path: Path) -> None:
    sim, report, out = _library(tmp_path, _simulator(98, 2_000, duplicate_rows=3))
    assert report.exit_code == 0 and report.status == "success", report.summary()
    _assert_exact(out, sim, fields=True)
    assert report.projects[PROJECT].duplicates_removed == 3


def test_rows_listed_twice_with_faults_and_throttling(tmp_path: Path) -> None:
    sim_config = _simulator(99, 2_000, duplicate_rows=3, faults=FAULTS, **THROTTLING)
    sim, report, out = _library(tmp_path, sim_config, **_throttled())
    assert report.exit_code == 0 and report.status == "success", report.summary()
    assert sim.stats.throttled > 0 and sum(sim.stats.faults.values()) > 0
    _assert_exact(out, sim, fields=True)
    assert report.projects[PROJECT].duplicates_removed == 3


def _conflicting_image_id(sim: Any) -> str:
    keys = Counter(natural_key(r) for r in sim.inventory.records(PROJECT, **EVERY_EP))
    (image_id,) = {key[0] for key, count in keys.items() if count == 2}
    return str(image_id)


def test_rows_that_share_a_natural_key_and_differ_fail_loudly(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(_simulator(100, 2_000, conflicting_rows=1)) as sim:
        image_id = _conflicting_image_id(sim)
        run = _Cli(cli, tmp_path, sim)
    message = run.assert_loud()
    assert image_id in message and "key" in message.lower()


def test_rows_in_conflict_with_faults_and_throttling_fail_loudly(tmp_path: Path) -> None:
    sim_config = _simulator(101, 2_000, conflicting_rows=1, faults=FAULTS, **THROTTLING)
    sim, report, out = _library(tmp_path, sim_config, **_throttled())
    image_id = _conflicting_image_id(sim)
    # (no check that a 429 or a 500 came first: the crawl stops at the page that holds the
    # conflict, which may be answered before any of them)
    message = _assert_loud(report, out)
    assert image_id in message and "key" in message.lower()


# -- 7. two short first pages of one length, then whole ----------------------------------

CUT_FIRST = {"gateway": GatewayConfig(cut_pages=(PageCut(0, 50, 2),))}


def test_two_short_first_pages_then_a_whole_one_are_not_a_cap(tmp_path: Path) -> None:
    sim, report, out = _library(tmp_path, _simulator(102, 3_000, **CUT_FIRST), page_size=200)
    assert sim.stats.project(PROJECT).behaviours["cut"] == 2
    assert report.exit_code == 0 and report.status == "success", report.summary()
    _assert_exact(out, sim)
    assert report.projects[PROJECT].page_size == 200


def test_two_short_first_pages_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(_simulator(103, 3_000, **CUT_FIRST)) as sim:
        run = _Cli(cli, tmp_path, sim, "--page-size", "200")
        run.assert_success()
        _assert_exact(run.out, sim)
    assert run.project["page_size"] == 200


def test_two_short_first_pages_with_faults_and_throttling(tmp_path: Path) -> None:
    sim_config = _simulator(104, 3_000, faults=FAULTS, **THROTTLING, **CUT_FIRST)
    sim, report, out = _library(tmp_path, sim_config, **_throttled(page_size=200))
    assert report.exit_code == 0 and report.status == "success", report.summary()
    assert sim.stats.throttled > 0 and sum(sim.stats.faults.values()) > 0
    _assert_exact(out, sim)
    assert report.projects[PROJECT].page_size == 200
