"""The operator's OpenLineage events under the real Airflow 3.3.2 and its OpenLineage provider.

The provider's FILE transport writes every event to a file; each test runs the one-task DAG
``lineage_dag.py`` against the simulator with ``dag.test()`` and checks the task's events
field by field against what the simulator served and what is on disk.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as pads
import pytest

from connector.simulator import (
    FaultConfig,
    ProjectFailure,
    RunningSimulator,
    SimulatorConfig,
    simulator_in_thread,
)
from tests.integration.helpers import EVERY_EP

from .airflow_env import (
    LINEAGE_DAG,
    NEEDS_AIRFLOW,
    OPENLINEAGE_NAMESPACE,
    ROOT,
    AirflowEnv,
    openlineage_env,
    openlineage_events,
)

pytestmark = NEEDS_AIRFLOW

TOKEN = secrets.token_hex(24)
JOB = "hss_images_lineage.sync"
SPOILED = FaultConfig(fraction_rate=0.02)
"""About 2% of records carry a fraction where an integer belongs: they are quarantined."""


def _schema_file_fields() -> list[tuple[str, str]]:
    """(name, type) of every column a reader of the lake sees, read from the schema file:
    the API's fields, the connector's, then the partition columns (in the paths)."""
    spec = json.loads((ROOT / "schemas" / "image_local_info.json").read_text())
    every = spec["fields"] + spec["connector_fields"]
    ordered = [f for f in every if not f.get("partition")] + [
        f for f in every if f.get("partition")
    ]
    return [(f["name"], f["type"]) for f in ordered]


def _run(
    airflow: AirflowEnv,
    sim: RunningSimulator,
    tmp_path: Path,
    projects: list[str],
    **variables: str,
) -> tuple[Any, Path, list[dict[str, Any]]]:
    lake = tmp_path / "lake"
    events = tmp_path / "openlineage.jsonl"
    connection = {
        "conn_type": "hss",
        "password": TOKEN,
        "extra": {"endpoint": sim.base_url, "project_ids": projects, "rate": 0},
    }
    env = {
        **openlineage_env(events),
        **{f"AIRFLOW_VAR_{k.upper()}": v for k, v in variables.items()},
    }
    run = airflow.run_dag(
        connection,
        lake,
        datetime.now(UTC).date(),
        dag=LINEAGE_DAG,
        variable="lineage_dag",
        env=env,
    )
    assert TOKEN not in events.read_text(), "the token reached the lineage events"
    assert TOKEN not in run.output
    return run, lake, openlineage_events(events, JOB)


def _lake_facts(lake: Path) -> tuple[int, int, int]:
    """Rows (read back with DuckDB), bytes on disk and number of the lake's Parquet files."""
    files = sorted(lake.rglob("*.parquet"))
    if not files:
        return 0, 0, 0
    [[rows]] = duckdb.sql(
        f"select count(*) from read_parquet('{lake.as_posix()}/**/*.parquet')"
    ).fetchall()
    return rows, sum(f.stat().st_size for f in files), len(files)


def _checks(dataset: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    assertions = dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
    return {(a["name"], a.get("column")): a for a in assertions}


def _quarantine_lines(lake: Path, project: str) -> int:
    state = lake.with_name(lake.name + ".connector") / "quarantine"
    files = list(state.glob(f"project_id={project}/*/quarantine.jsonl"))
    return sum(len(f.read_text().splitlines()) for f in files)


@pytest.fixture(scope="module")
def spoiled_simulator() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        records=10,
        project_records={"lin-a": 400, "lin-b": 150},
        tokens=frozenset({TOKEN}),
        seed=7,
        faults=SPOILED,
    )
    with simulator_in_thread(config) as running:
        yield running


def test_a_sync_reports_what_it_read_and_wrote_with_the_quarantined_records(
    airflow: AirflowEnv, spoiled_simulator: RunningSimulator, tmp_path: Path
) -> None:
    sim = spoiled_simulator
    projects = ["lin-a", "lin-b"]
    quarantined = {p: len(sim.inventory.quarantine_keys(p, **EVERY_EP)) for p in projects}
    assert sum(quarantined.values()) > 0, "the simulator spoiled no record"

    run, lake, events = _run(airflow, sim, tmp_path, projects)

    assert run.state == "success", run.output[-5000:]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    start, complete = events
    assert start["run"]["runId"] == complete["run"]["runId"]
    # what is known at the start: the lake and its schema, nothing written yet
    assert start["inputs"] == []
    [planned] = start["outputs"]
    assert (planned["namespace"], planned["name"]) == ("file", str(lake.resolve()))
    assert [(f["name"], f["type"]) for f in planned["facets"]["schema"]["fields"]] == (
        _schema_file_fields()
    )
    assert planned.get("outputFacets", {}) == {}
    assert complete["job"]["namespace"] == OPENLINEAGE_NAMESPACE
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "hss_images_lineage"

    # inputs: the API resource of each project, at the endpoint
    inputs = complete["inputs"]
    assert [(d["namespace"], d["name"]) for d in inputs] == [
        (sim.base_url, f"/v5/{p}/image/local-repositories") for p in projects
    ]
    schema_names = {name for name, _ in _schema_file_fields()}
    for dataset, project in zip(inputs, projects, strict=True):
        metrics = dataset["inputFacets"]["dataQualityMetrics"]
        assert metrics["rowCount"] == sim.inventory.total(project, **EVERY_EP)
        checks = _checks(dataset)
        overall = checks[("records_match_schema", None)]
        assert overall["actual"] == str(quarantined[project])
        assert overall["params"]["quarantined"] == quarantined[project]
        assert overall["success"] is (quarantined[project] == 0)
        assert _quarantine_lines(lake, project) == quarantined[project]
        per_field = {c: a for (n, c), a in checks.items() if n == "records_match_schema" and c}
        assert set(per_field) <= schema_names
        assert sum(int(a["actual"]) for a in per_field.values()) >= quarantined[project]
        assert bool(per_field) is (quarantined[project] > 0)
        limit = checks[("max_quarantined", None)]
        assert (limit["success"], limit["expected"]) == (True, "<= 10%")
        published = checks[("project_published", None)]
        assert (published["success"], published["actual"]) == (True, "published")

    # output: the lake, its schema, and what this run published
    [output] = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(lake.resolve()))
    fields = output["facets"]["schema"]["fields"]
    assert [(f["name"], f["type"]) for f in fields] == _schema_file_fields()
    read_back = pads.dataset(lake, format="parquet", partitioning="hive").schema.names
    assert sorted(read_back) == sorted(f["name"] for f in fields)
    rows, size, count = _lake_facts(lake)
    statistics = output["outputFacets"]["outputStatistics"]
    assert (statistics["rowCount"], statistics["size"], statistics["fileCount"]) == (
        rows,
        size,
        count,
    )
    assert rows == sum(sim.inventory.total(p, **EVERY_EP) for p in projects) - sum(
        quarantined.values()
    )
    [report] = run.xcoms("sync").values()
    assert report["records_quarantined"] == sum(quarantined.values())


def test_failed_projects_are_named_in_the_fail_event(airflow: AirflowEnv, tmp_path: Path) -> None:
    """One project is published, one holds more invalid records than the limit (0), one
    the API refuses: the task fails, and its FAIL event says which and why."""
    config = SimulatorConfig(
        records=10,
        project_records={"ok": 40, "spoiled": 200, "denied": 60},
        tokens=frozenset({TOKEN}),
        seed=5,
        faults=FaultConfig(
            fraction_rate=0.02, project_failures={"denied": ProjectFailure(count=None)}
        ),
    )
    projects = ["ok", "spoiled", "denied"]
    with simulator_in_thread(config) as sim:
        spoiled = len(sim.inventory.quarantine_keys("spoiled", **EVERY_EP))
        assert spoiled > 0 and not sim.inventory.quarantine_keys("ok", **EVERY_EP)
        run, lake, events = _run(airflow, sim, tmp_path, projects, hss_images_max_quarantined="0")
        served_ok = sim.inventory.total("ok", **EVERY_EP)

    assert run.state == "failed"
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    fail = events[1]
    error = fail["run"]["facets"]["errorMessage"]
    assert "2 of 3 project(s) failed" in error["message"]
    assert error["programmingLanguage"] == "python"

    ok, bad, denied = (_checks(d) for d in fail["inputs"])
    assert [d["name"] for d in fail["inputs"]] == [
        f"/v5/{p}/image/local-repositories" for p in projects
    ]
    assert ok[("project_published", None)]["success"] is True

    assert bad[("records_match_schema", None)]["actual"] == str(spoiled)
    assert bad[("max_quarantined", None)]["success"] is False
    assert bad[("max_quarantined", None)]["expected"] == "<= 0"
    refused = bad[("project_published", None)]
    assert (refused["success"], refused["actual"]) == (False, "failed")
    assert refused["description"].startswith("QuarantineLimitError: ")

    refused = denied[("project_published", None)]
    assert (refused["success"], refused["actual"]) == (False, "failed")
    assert "HSS.0013" in refused["description"]
    assert denied[("max_quarantined", None)]["success"] is True  # not why it failed

    [output] = fail["outputs"]
    rows, size, count = _lake_facts(lake)
    assert (rows, count) == (served_ok, 1)  # only the good project was published
    statistics = output["outputFacets"]["outputStatistics"]
    assert (statistics["rowCount"], statistics["size"], statistics["fileCount"]) == (
        rows,
        size,
        count,
    )


def test_the_operator_imports_and_runs_without_the_openlineage_provider(
    airflow: AirflowEnv, spoiled_simulator: RunningSimulator, tmp_path: Path
) -> None:
    """The provider is an optional extra: with its modules and the client made unimportable
    (after Airflow has started, which lists the installed providers), connector.airflow
    imports and a sync runs to its end; nothing else calls the lineage method."""
    code = (
        "import json, sys\n"
        "import airflow.sdk\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "ProvidersManager().initialize_providers_list()\n"
        "for name in [m for m in sys.modules if m.split('.')[0] == 'openlineage'\n"
        "             or m.startswith('airflow.providers.openlineage')]:\n"
        "    del sys.modules[name]\n"
        "sys.modules['openlineage'] = sys.modules['airflow.providers.openlineage'] = None\n"
        "from connector.airflow import HssImageSyncOperator\n"
        f"task = HssImageSyncOperator(task_id='sync', out={str(tmp_path / 'lake')!r})\n"
        "report = task.execute({'ti': None})\n"
        "print(json.dumps(report['records_written']))"
    )
    connection = {
        "conn_type": "hss",
        "password": TOKEN,
        "extra": {"endpoint": spoiled_simulator.base_url, "project_ids": ["lin-b"]},
    }
    written = AirflowEnv(
        airflow.home,
        airflow.dags,
        {**airflow.base_env, "AIRFLOW_CONN_HSS_DEFAULT": json.dumps(connection)},
    ).python(code)

    rows, _, _ = _lake_facts(tmp_path / "lake")
    assert written == rows > 0
