"""Nothing lost: every fault alone and all together, drift, bad records, failing projects.

Each case asserts that output plus quarantine equals the simulator's data: every record in
exactly one place, nothing dropped, nothing duplicated.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector import FetchSettings, QuarantineLimit
from connector.simulator import (
    DriftConfig,
    FaultConfig,
    ProjectFailure,
    SimulatorConfig,
    simulator_in_thread,
)

from .helpers import (
    API_FIELDS,
    EVERY_EP,
    FAST_RETRY,
    TOKEN,
    as_api_record,
    config,
    read_rows,
    served,
    sync,
)

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
OTHER = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
COERCE = {"numeric_string"}

TRANSPORT = {
    "http_500": {"http_500_rate": 0.2},
    "http_503_bursts": {"http_503_rate": 0.1, "burst": 2},
    "connection_reset": {"reset_rate": 0.2},
    "truncated_body": {"truncate_rate": 0.2},
    "invalid_json": {"invalid_json_rate": 0.2},
    "html_error_page": {"html_rate": 0.2},
    "slower_than_timeout": {"slow_rate": 0.1, "slow_seconds": 1.5},
}
DATA = {
    "numeric_strings": {"numeric_string_rate": 0.05},
    "fractions": {"fraction_rate": 0.02},
    "iso_dates": {"iso_date_rate": 0.02},
    "missing_fields": {"missing_field_rate": 0.05},
    "unknown_fields": {"extra_field_rate": 0.05},
}
THROTTLING = {
    "per_second_with_retry_after": {"rate": 30, "burst": 3, "retry_after": 0},
    "per_second_without_retry_after": {"rate": 30, "burst": 3},
    "per_minute": {"rate_per_minute": 300, "retry_after": 1, "records": 4_000},
}
DRIFT = DriftConfig(every_n_requests=3, inserts=2, deletes=2, max_events=40)


def quarantined(out: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in sorted(Path(f"{out}.connector").glob("quarantine/**/*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def check_nothing_lost(out: Path, sim: Any, project: str, *, drift: bool) -> dict[str, int]:
    """Output + quarantine == the server's data; return the figures for the note."""
    rows = read_rows(out, f"project_id = '{project}'")
    written = [r["image_id"] for r in rows]
    bad = quarantined(out)
    parked = [e["record"]["image_id"] for e in bad if isinstance(e["record"], dict)]
    assert len(written) == len(set(written)), "a record was written twice"
    assert len(parked) == len(set(parked)), "a record was quarantined twice"
    assert not set(written) & set(parked), "a record is both written and quarantined"
    everything = set(written) | set(parked)
    if drift:
        stable = {r["image_id"] for r in sim.inventory.stable_records(project, **EVERY_EP)}
        ever = {r["image_id"] for r in sim.inventory.ever_records(project, **EVERY_EP)}
        assert stable <= everything, f"lost {len(stable - everything)} stable records"
        assert everything <= ever
        lost = len(stable - everything)
    else:
        inventory = {r["image_id"]: r for r in sim.inventory.records(project, **EVERY_EP)}
        assert everything == set(inventory), (
            f"lost {len(set(inventory) - everything)}, extra {len(everything - set(inventory))}"
        )
        assert set(parked) == sim.inventory.quarantine_ids(project, **EVERY_EP) & set(inventory)
        for entry in bad:
            assert entry["record"] == inventory[entry["record"]["image_id"]]
            assert entry["field"] and entry["reason"] and entry["request_id"]
            assert entry["project_id"] == project and isinstance(entry["offset"], int)
        faults = sim.inventory.data_faults(project, **EVERY_EP)
        for row in rows:
            kinds = {f.kind.value for f in faults.get(row["image_id"], ())}
            raw = inventory[row["image_id"]]
            unknown = {k: v for k, v in raw.items() if k not in API_FIELDS}
            assert (orjson.loads(row["extra_fields"]) if row["extra_fields"] else {}) == unknown
            if not kinds & COERCE:
                assert as_api_record(row) == served(raw)
        lost = 0
    return {"written": len(written), "quarantined": len(parked), "lost": lost}


def _run(tmp_path: Path, sim_config: SimulatorConfig, **fetch: Any) -> tuple[Any, dict[str, int]]:
    settings = FetchSettings(rate=0, concurrency=6, read_timeout_s=1.0, retry=FAST_RETRY)
    settings = replace(settings, **fetch)
    with simulator_in_thread(sim_config) as sim:
        cfg = config(
            sim.base_url,
            tmp_path,
            (PROJECT,),
            fetch=settings,
            max_quarantined=QuarantineLimit(percent=50.0),
        )
        report = sync(cfg)
        assert report.status == "success", report.summary()
        figures = check_nothing_lost(tmp_path, sim, PROJECT, drift=sim_config.drift.enabled)
        figures.update(
            requests=report.projects[PROJECT].requests,
            retries=report.projects[PROJECT].retries,
            injected=sum(sim.stats.faults.values()),
        )
    return report, figures


@pytest.mark.parametrize("name", sorted(TRANSPORT))
def test_transport_fault_alone(tmp_path: Path, name: str) -> None:
    sim_config = SimulatorConfig(
        seed=21, records=8_000, tokens=frozenset({TOKEN}), faults=FaultConfig(**TRANSPORT[name])
    )
    report, figures = _run(tmp_path, sim_config)
    project = report.projects[PROJECT]
    if name == "slower_than_timeout":  # the server never finishes these: count the timeouts
        assert project.retry_reasons.get("TransportError", 0) > 0
    elif name == "connection_reset":
        # aiohttp itself resends a GET once when a kept-alive connection drops, so some
        # resets never reach the connector's retry policy; either way nothing is lost
        assert figures["injected"] > 0
    else:
        assert figures["injected"] > 0 and figures["retries"] >= figures["injected"]
    assert figures["lost"] == 0


@pytest.mark.parametrize("name", sorted(DATA))
def test_data_fault_alone(tmp_path: Path, name: str) -> None:
    sim_config = SimulatorConfig(
        seed=22, records=2_000, tokens=frozenset({TOKEN}), faults=FaultConfig(**DATA[name])
    )
    report, figures = _run(tmp_path, sim_config)
    project = report.projects[PROJECT]
    if name in ("fractions", "iso_dates"):
        assert figures["quarantined"] > 0 and project.records_quarantined == figures["quarantined"]
    else:
        assert figures["quarantined"] == 0
    if name == "unknown_fields":
        assert project.extra_fields and report.schema_drift


@pytest.mark.parametrize(
    "name",  # a minute's budget runs out: a minute of real time
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "per_minute" else n
        for n in sorted(THROTTLING)
    ],
)
def test_throttling_alone(tmp_path: Path, name: str) -> None:
    settings = {"records": 1_500, **THROTTLING[name]}
    sim_config = SimulatorConfig(seed=23, tokens=frozenset({TOKEN}), **settings)
    page_size = 10 if name == "per_minute" else 200  # enough requests to pass the minute's budget
    report, _figures = _run(tmp_path, sim_config, rate=400, burst=20, page_size=page_size)
    assert report.projects[PROJECT].throttled > 0


def test_drift_alone(tmp_path: Path) -> None:
    # more inserts than deletes: total_num moves, so the change is always visible
    drift = DriftConfig(every_n_requests=2, inserts=3, deletes=1, max_events=40)
    sim_config = SimulatorConfig(seed=24, records=3_000, tokens=frozenset({TOKEN}), drift=drift)
    report, _figures = _run(tmp_path, sim_config)
    assert report.drift_detected and report.projects[PROJECT].drift


def test_every_fault_together(tmp_path: Path) -> None:
    transport = {k: v for case in TRANSPORT.values() for k, v in case.items()}
    transport = {k: (v / 6 if k.endswith("_rate") else v) for k, v in transport.items()}
    transport["burst"] = 1
    data = {k: v for case in DATA.values() for k, v in case.items()}
    sim_config = SimulatorConfig(
        seed=25,
        records=4_000,
        tokens=frozenset({TOKEN}),
        rate=60,
        burst=5,
        retry_after=0,
        faults=FaultConfig(**transport, **data),
        drift=DRIFT,
    )
    retry = replace(FAST_RETRY, max_attempts=20)
    report, figures = _run(tmp_path, sim_config, rate=150, burst=10, retry=retry)
    project = report.projects[PROJECT]
    assert project.throttled > 0 and project.drift_detected and project.records_quarantined > 0
    assert figures["lost"] == 0


def test_offset_ceiling_is_split_by_update_time(tmp_path: Path) -> None:
    sim_config = SimulatorConfig(seed=26, records=3_000, tokens=frozenset({TOKEN}), max_offset=500)
    report, figures = _run(tmp_path, sim_config, max_offset=500, page_size=100)
    assert report.projects[PROJECT].slices > 1
    assert figures["lost"] == 0


def test_too_many_bad_records_fails_without_publishing(tmp_path: Path) -> None:
    faults = FaultConfig(fraction_rate=0.2)
    with simulator_in_thread(
        SimulatorConfig(seed=27, records=800, tokens=frozenset({TOKEN}), faults=faults)
    ) as sim:
        report = sync(
            config(sim.base_url, tmp_path, (PROJECT,), max_quarantined=QuarantineLimit.parse("5%"))
        )
    assert report.exit_code == 5 and report.status == "failed"
    assert report.projects[PROJECT].error_type == "QuarantineLimitError"
    assert not list(tmp_path.rglob("*.parquet"))
    assert not list(Path(f"{tmp_path}.connector").rglob("*.jsonl"))  # nor its quarantine


def test_one_failing_project_does_not_lose_the_others(tmp_path: Path) -> None:
    failures = {OTHER: ProjectFailure(status=403, error_code="HSS.0013", count=None)}
    sim_config = SimulatorConfig(
        seed=28,
        records=700,
        tokens=frozenset({TOKEN}),
        faults=FaultConfig(project_failures=failures),
    )
    with simulator_in_thread(sim_config) as sim:
        report = sync(config(sim.base_url, tmp_path, (PROJECT, OTHER)))
        expected = sim.inventory.total(PROJECT, **EVERY_EP)
    assert report.status == "partial" and report.exit_code == 4
    assert report.projects[PROJECT].status == "published"
    assert report.projects[OTHER].status == "failed"
    assert "HSS.0013" in (report.projects[OTHER].error or "")
    assert len(read_rows(tmp_path)) == expected
    assert {r["project_id"] for r in read_rows(tmp_path)} == {PROJECT}
