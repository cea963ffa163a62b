"""A day under the real Airflow 3: one asset event, one downstream run, retries that resume.

An Airflow home of its own, where the example DAG, a DAG scheduled on the lake's Asset
(``downstream_dag.py``, as the README writes it) and the operator alone with a retry
(``retry_dag.py``) are registered (``airflow dags reserialize``), the downstream DAG
unpaused. The example DAG runs with ``dag.test()``; then the real scheduler loops a few
times and creates the downstream DAG's runs from the asset events.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import connector
from connector import Auth, Config, Secret
from connector.simulator import (
    FaultConfig,
    ProjectFailure,
    RunningSimulator,
    SimulatorConfig,
    simulator_in_thread,
)
from tests.integration.helpers import EVERY_EP

from .airflow_env import (
    AIRFLOW_BIN,
    DOWNSTREAM_DAG,
    EXAMPLE_DAG,
    NEEDS_AIRFLOW,
    RETRY_DAG,
    SUBPROCESS_TIMEOUT_S,
    AirflowEnv,
    migrated_home,
)

pytestmark = NEEDS_AIRFLOW

TOKEN = secrets.token_hex(24)
# numeric-looking project ids, as some accounts have them
PROJECTS = {"0123456789": 300, "42": 80, "proj-c": 150}
FLAKY = "42"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> AirflowEnv:
    env = migrated_home(
        tmp_path_factory.mktemp("airflow_day"), [EXAMPLE_DAG, DOWNSTREAM_DAG, RETRY_DAG]
    )
    for args in (("dags", "reserialize"), ("dags", "unpause", "hss_images_downstream")):
        done = env.command(*args)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return env


def _simulator(faults: FaultConfig | None = None, day: int = 0) -> Any:
    config = SimulatorConfig(
        records=10,
        project_records=PROJECTS,
        tokens=frozenset({TOKEN}),
        seed=5,
        faults=faults or FaultConfig(),
        day=day,
    )
    return simulator_in_thread(config)


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    with _simulator() as running:
        yield running


@pytest.fixture
def flaky() -> Iterator[RunningSimulator]:
    """``42`` answers its first 3 requests with a 503: with 2 attempts a request, the first
    try fails it, a retry reads it."""
    with _simulator(
        FaultConfig(project_failures={FLAKY: ProjectFailure(count=3, status=503)})
    ) as running:
        yield running


def _connection(simulator: RunningSimulator, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "hss",
        "password": TOKEN,
        "extra": {"endpoint": simulator.base_url, "project_ids": list(PROJECTS), **extra},
    }


def _today() -> Any:
    return datetime.now(UTC).date()


def _downstream_runs(home: AirflowEnv) -> list[dict[str, Any]]:
    """The downstream DAG's runs, with the asset events each consumed."""
    code = """
import json
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from sqlalchemy import select
with create_session() as session:
    runs = session.scalars(select(DagRun).where(DagRun.dag_id == "hss_images_downstream"))
    print(json.dumps([
        {"run_type": str(r.run_type), "events": [e.extra for e in r.consumed_asset_events]}
        for r in runs
    ]))
"""
    result: list[dict[str, Any]] = home.python(code)
    return result


def _schedule(home: AirflowEnv) -> None:
    """The real scheduler, a few loops: it turns queued asset events into DAG runs."""
    done = subprocess.run(
        [str(AIRFLOW_BIN / "airflow"), "scheduler", "--num-runs", "3"],
        env=home.base_env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_a_day_of_three_projects_is_one_event_and_one_downstream_run(
    home: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"

    run = home.run_dag(_connection(simulator), lake, _today())

    assert run.state == "success", run.output[-5000:]
    [report] = run.xcoms("sync").values()
    assert {p: d["status"] for p, d in report["projects"].items()} == dict.fromkeys(
        PROJECTS, "published"
    ), report
    [event] = run.asset_events
    assert (event["name"], event["task_id"]) == ("hss_images_lake", "record_day")
    assert event["extra"]["projects_published"] == sorted(PROJECTS)
    assert event["extra"]["rows"] == sum(simulator.inventory.total(p, **EVERY_EP) for p in PROJECTS)

    _schedule(home)

    runs = _downstream_runs(home)
    assert len(runs) == 1, runs  # once for the day, not once per project or per task
    assert runs[0]["run_type"] in ("asset_triggered", "DagRunType.ASSET_TRIGGERED")
    assert runs[0]["events"] == [event["extra"]]


def test_a_retried_sync_reads_only_the_project_its_first_try_failed(
    home: AirflowEnv, flaky: RunningSimulator, tmp_path: Path
) -> None:
    simulator = flaky
    lake = tmp_path / "lake"
    connection = _connection(simulator, max_attempts=2)

    run = home.run_dag(connection, lake, _today(), dag=RETRY_DAG, variable="retry_dag")

    assert run.state == "success", run.output[-5000:]
    [sync] = [t for t in run.tasks if t["task_id"] == "sync"]
    assert (sync["state"], sync["try_number"]) == ("success", 2)
    [report] = run.xcoms("sync").values()  # the second try's
    assert {p: d["status"] for p, d in report["projects"].items()} == {
        "0123456789": "skipped",
        FLAKY: "published",
        "proj-c": "skipped",
    }
    # the first try's requests only: the retry sent none for the projects it published
    requests = {p: s.requests for p, s in simulator.stats.projects.items()}
    for project in ("0123456789", "proj-c"):
        pages = -(-simulator.inventory.total(project, **EVERY_EP) // 200)  # first try's pages
        assert requests[project] <= pages + 2, requests  # + the reads that prove the end
        assert report["projects"][project]["requests"] == 0
    assert "try 2: skip_published is on" in run.output

    # a templated out: the Asset by name, and one event, from the try that succeeded
    [event] = run.asset_events
    assert (event["name"], event["task_id"]) == ("hss_images_lake", "sync")
    assert event["extra"]["projects_published"] == sorted(PROJECTS)
    assert event["extra"]["projects_failed"] == []
    first_run = report["projects"]["proj-c"]["published_by"]
    assert sorted(event["extra"]["run_ids"]) == sorted({first_run, report["run_id"]})
    assert json.dumps(event["extra"]).count(TOKEN) == 0


def test_the_example_dag_maps_one_task_per_connection_and_records_one_event(
    home: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    """Two credentials (here two connections to one simulator), two tasks side by side,
    and still one event for the day, naming both runs."""
    lake = tmp_path / "lake"
    second = {
        **_connection(simulator),
        "extra": {"endpoint": simulator.base_url, "project_ids": "proj-c"},
    }
    first = {
        **_connection(simulator),
        "extra": {"endpoint": simulator.base_url, "project_ids": ["0123456789", FLAKY]},
    }
    env = {
        "AIRFLOW_CONN_HSS_ACCOUNT_B": json.dumps(second),
        "AIRFLOW_VAR_HSS_IMAGES_CONN_IDS": json.dumps(["hss_default", "hss_account_b"]),
    }

    run = home.run_dag(first, lake, _today(), env=env)

    assert run.state == "success", run.output[-5000:]
    tasks = {t["rendered_map_index"]: t["state"] for t in run.tasks if t["task_id"] == "sync"}
    assert tasks == {"hss_default": "success", "hss_account_b": "success"}
    reports = list(run.xcoms("sync").values())
    assert sorted(sorted(r["projects"]) for r in reports) == [["0123456789", FLAKY], ["proj-c"]]
    [event] = run.asset_events
    assert event["task_id"] == "record_day"
    assert event["extra"]["projects_published"] == sorted(PROJECTS)
    assert event["extra"]["run_ids"] == sorted(r["run_id"] for r in reports)
    assert event["extra"]["files"] == len(PROJECTS)


def test_the_days_event_counts_what_changed_since_the_day_before(
    home: AirflowEnv, tmp_path: Path
) -> None:
    """Yesterday's snapshot in the lake (the simulator's day 0), today's read by the example
    DAG (its day 1): the event's ``changes`` are the diff of the two, as ``hss-images diff``
    counts them, and the simulator's own record of the day says the same."""
    lake = tmp_path / "lake"
    today = _today()
    with _simulator() as yesterday_sim:
        before = connector.run(
            Config(
                projects=tuple(PROJECTS),
                endpoint=yesterday_sim.base_url,
                out=str(lake),
                auth=Auth(token=Secret(TOKEN)),
                snapshot_date=today - timedelta(days=1),
                progress="off",
            )
        )
        assert before.status == "success", before.summary()
    with _simulator(day=1) as today_sim:
        run = home.run_dag(_connection(today_sim), lake, today)
        record = {p: today_sim.inventory.day_changes(p) for p in PROJECTS}

    assert run.state == "success", run.output[-5000:]
    [event] = run.asset_events
    changes = event["extra"]["changes"]
    assert changes == json.loads(json.dumps(connector.diff(lake, to_date=today).counts()))
    total = changes["total"]
    assert total["appeared"] > 0 and total["removed"] > 0 and total["changed"] > 0
    for project, days in record.items():
        [change] = days  # day 1's
        counted = changes["projects"][project]
        assert counted["from_date"] == (today - timedelta(days=1)).isoformat()
        assert counted["to_date"] == today.isoformat()
        assert (counted["appeared"], counted["removed"], counted["changed"]) == (
            len(change.appeared),
            len(change.removed),
            len(change.rescanned),
        )
    assert "what changed since the previous snapshots" in run.output
