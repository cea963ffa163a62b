"""The example DAG under a real Airflow 3, against the embedded simulator on a real socket.

Airflow lives in its own virtualenv (``.venv-airflow``, made by ``./dev test``): this test
runs from the project's virtualenv, serves the simulator itself and runs the DAG with
``dag.test()`` in a subprocess (``airflow_runner.py``), the connection given as
``AIRFLOW_CONN_HSS_DEFAULT`` and the lake path as ``AIRFLOW_VAR_HSS_IMAGES_LAKE_PATH``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

import connector
from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = ROOT / ".venv-airflow" / "bin"
EXAMPLE_DAG = ROOT / "examples" / "hss_images_dag.py"
RUNNER = Path(__file__).with_name("airflow_runner.py")
KILL_RUNNER = Path(__file__).with_name("airflow_on_kill_runner.py")
TOKEN = secrets.token_hex(24)
PROJECT_RECORDS = {"proj-alpha": 450, "proj-beta": 120, "proj-gamma": 35}
SUBPROCESS_TIMEOUT_S = 120

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(
        not (AIRFLOW_BIN / "python").exists(),
        reason=f"no Airflow virtualenv at {AIRFLOW_BIN.parent} (./dev test creates it: "
        "python3 -m venv .venv-airflow && .venv-airflow/bin/pip install "
        "-r requirements/airflow.txt -e .)",
    ),
]


@dataclass(frozen=True)
class DagRun:
    state: str
    tasks: list[dict[str, Any]]
    xcom: list[dict[str, Any]]
    asset_events: list[dict[str, Any]]
    output: str
    """Everything Airflow printed (with dag.test() the task logs go to the console)."""

    def task_states(self, task_id: str) -> dict[int, str]:
        return {t["map_index"]: t["state"] for t in self.tasks if t["task_id"] == task_id}

    def xcoms(self, task_id: str, key: str = "return_value") -> dict[int, Any]:
        return {
            x["map_index"]: x["value"]
            for x in self.xcom
            if x["task_id"] == task_id and x["key"] == key
        }


@dataclass(frozen=True)
class AirflowEnv:
    home: Path
    dags: Path
    base_env: dict[str, str]

    def run_dag(self, connection: dict[str, Any], lake: Path, logical_date: date) -> DagRun:
        env = {
            **self.base_env,
            "AIRFLOW_CONN_HSS_DEFAULT": json.dumps(connection),
            "AIRFLOW_VAR_HSS_IMAGES_LAKE_PATH": str(lake),
        }
        result = self.home / f"result-{logical_date}.json"
        done = subprocess.run(
            [
                str(AIRFLOW_BIN / "python"),
                str(RUNNER),
                str(self.dags / EXAMPLE_DAG.name),
                "hss_images_dag",
                logical_date.isoformat(),
                str(result),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]
        data = json.loads(result.read_text())
        return DagRun(data["state"], data["tasks"], data["xcom"], data["asset_events"], output)

    def command(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``airflow ARGS`` in this AIRFLOW_HOME (exit status not checked)."""
        return subprocess.run(
            [str(AIRFLOW_BIN / "airflow"), *args],
            env={**self.base_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
            check=False,
        )

    def python(self, code: str) -> Any:
        """Run ``code`` under the Airflow virtualenv; it prints one JSON value, returned."""
        done = subprocess.run(
            [str(AIRFLOW_BIN / "python"), "-c", code],
            env=self.base_env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def files_mentioning(self, secret: str) -> list[Path]:
        """Files under AIRFLOW_HOME (logs, metadata database, config) holding ``secret``."""
        needle = secret.encode()
        return [p for p in self.home.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _clean_environ() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "HSS_", "PYTHON", "VIRTUAL_ENV"))
    }


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> AirflowEnv:
    """A migrated AIRFLOW_HOME whose DAG folder holds only the example DAG."""
    home = tmp_path_factory.mktemp("airflow_home")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE_DAG, dags / EXAMPLE_DAG.name)
    env = {
        **_clean_environ(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
    }
    migrated = subprocess.run(
        [str(AIRFLOW_BIN / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert migrated.returncode == 0, (migrated.stdout + migrated.stderr)[-5000:]
    return AirflowEnv(home, dags, env)


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        records=10, project_records=PROJECT_RECORDS, tokens=frozenset({TOKEN}), seed=7
    )
    with simulator_in_thread(config) as running:
        yield running


def _today() -> date:
    return datetime.now(UTC).date()


def _connection(simulator: RunningSimulator, token: str) -> dict[str, Any]:
    return {
        "conn_type": "generic",
        "password": token,
        "extra": {"endpoint": simulator.base_url, "project_ids": list(PROJECT_RECORDS)},
    }


def test_example_dag_syncs_every_project_into_the_lake(
    airflow: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    logical_date = _today()
    expected = {
        p: simulator.inventory.total(p, enterprise_project_id="all_granted_eps")
        for p in PROJECT_RECORDS
    }
    assert all(expected.values())

    run = airflow.run_dag(_connection(simulator, TOKEN), lake, logical_date)
    read_on = {logical_date, _today()}  # the day the tasks read on (the test may span midnight)

    assert run.state == "success", run.output[-5000:]
    assert run.task_states("list_projects") == {-1: "success"}
    assert run.task_states("sync_project") == dict.fromkeys(range(len(PROJECT_RECORDS)), "success")
    assert run.task_states("summarise") == {-1: "success"}
    rendered = {t["rendered_map_index"] for t in run.tasks if t["task_id"] == "sync_project"}
    assert rendered == set(PROJECT_RECORDS)  # map_index_template names each mapped task

    reports = list(run.xcoms("sync_project").values())
    assert len(reports) == len(PROJECT_RECORDS)
    for report in reports:
        assert report["status"] == "success"
        assert report["exit_code"] == 0
        assert report["snapshot_date"] in {d.isoformat() for d in read_on}
        assert report["snapshot_date_origin"] == "default"  # the date of reading
        [(project, detail)] = report["projects"].items()
        assert detail["status"] == "published"
        assert detail["records_written"] == expected[project]
    summary = run.xcoms("summarise")[-1]
    assert summary["projects"] == len(PROJECT_RECORDS)
    assert summary["records_written"] == sum(expected.values())

    rows = duckdb.sql(
        "SELECT project_id, snapshot_date, count(*) FROM read_parquet("
        f"'{lake.as_posix()}/**/*.parquet', hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    assert {p: n for p, _, n in rows} == expected
    assert len({d for _, d, _ in rows}) == 1 and {d for _, d, _ in rows} <= read_on

    # each sync task records an event on the lake's asset: downstream DAGs schedule on it
    assert run.asset_events == [
        {"uri": "hss_images_lake", "name": "hss_images_lake", "task_id": "sync_project"}
    ] * len(PROJECT_RECORDS)

    assert "HssImageSyncOperator" in run.output and "records written" in run.output
    assert TOKEN not in run.output
    assert airflow.files_mentioning(TOKEN) == []


def test_a_rejected_token_fails_the_tasks_with_the_connectors_error(
    airflow: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    bad_token = "rejected-" + secrets.token_hex(24)

    run = airflow.run_dag(_connection(simulator, bad_token), lake, _today())

    assert run.state == "failed"
    assert run.task_states("list_projects") == {-1: "success"}
    # an AuthError is not retried: the tasks fail at once instead of waiting for a retry
    assert run.task_states("sync_project") == dict.fromkeys(range(len(PROJECT_RECORDS)), "failed")
    assert run.task_states("summarise") == {-1: "upstream_failed"}
    # the task's exception carries the connector's error, one line per failed project
    failure = re.compile(
        r"AirflowFailException: HSS image sync failed: 1 of 1 project\(s\) failed .*\n"
        r"AuthError: the credentials were rejected.*\(project proj-\w+, .*HTTP 401, "
        r"error_code APIG\.0301"
    )
    assert len(failure.findall(run.output)) == len(PROJECT_RECORDS), run.output[-5000:]
    reports = run.xcoms("sync_project", key="report")
    assert len(reports) == len(PROJECT_RECORDS)
    for report in reports.values():
        assert report["status"] == "failed"
        [detail] = report["projects"].values()
        assert detail["error_type"] == "AuthError"
    assert not list(lake.rglob("*.parquet"))

    assert run.asset_events == []  # no data, no event
    assert bad_token not in run.output
    assert airflow.files_mentioning(bad_token) == []


def test_a_run_for_a_past_day_is_skipped_instead_of_faking_that_days_snapshot(
    airflow: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    """A backfill, catch-up or cleared old run cannot read the inventory of its day (the API
    has no history): it skips, saying why, rather than writing today's images under it."""
    lake = tmp_path / "lake"
    past = _today() - timedelta(days=30)

    run = airflow.run_dag(_connection(simulator, TOKEN), lake, past)

    assert run.task_states("list_projects") == {-1: "success"}
    assert run.task_states("sync_project") == dict.fromkeys(range(len(PROJECT_RECORDS)), "skipped")
    assert run.task_states("summarise") == {-1: "skipped"}
    assert run.state == "success", run.output[-5000:]  # nothing failed: there was nothing to do
    assert f"this run stands for {past}" in run.output
    assert "the HSS API has no history" in run.output
    assert not lake.exists() or not list(lake.rglob("*.parquet"))


# ------------------------------------------------------------- the provider registration


def _json_table(output: str) -> list[dict[str, Any]]:
    """The JSON list an ``airflow ... -o json`` command printed (after any log lines)."""
    return list(json.loads(output[output.index("[") :]))


def test_airflow_discovers_the_provider_its_hook_and_connection_type(airflow: AirflowEnv) -> None:
    """The ``apache_airflow_provider`` entry point is all Airflow needs to list the hook."""
    hooks = airflow.command("providers", "hooks", "-o", "json")
    assert hooks.returncode == 0, hooks.stderr[-3000:]
    [hook] = [h for h in _json_table(hooks.stdout) if h["connection_type"] == "hss"]
    assert hook == {
        "connection_type": "hss",
        "class": "connector.airflow.HssHook",
        "conn_id_attribute_name": "hss_conn_id",
        "package_name": "hss-image-connector",
        "hook_name": "Huawei Cloud HSS",
    }
    providers = airflow.command("providers", "list", "-o", "json")
    assert providers.returncode == 0, providers.stderr[-3000:]
    [ours] = [
        p for p in _json_table(providers.stdout) if p["package_name"] == "hss-image-connector"
    ]
    assert ours["version"] == connector.__version__

    behaviours = airflow.command("providers", "behaviours", "-o", "json")
    assert behaviours.returncode == 0, behaviours.stderr[-3000:]
    assert {"field_behaviours": "hss"} in _json_table(behaviours.stdout)
    widgets = airflow.command("providers", "widgets", "-o", "json")
    assert widgets.returncode == 0, widgets.stderr[-3000:]
    ours_widgets = {
        w["connection_parameter_name"]: w["field_type"]
        for w in _json_table(widgets.stdout)
        if w["package_name"] == "hss-image-connector"
    }
    assert ours_widgets["extra__hss__rate"] == ["number", "null"]
    assert ours_widgets["extra__hss__concurrency"] == ["integer", "null"]
    assert {f"extra__hss__{k}" for k in ("auth", "region", "endpoint", "project_ids")} <= set(
        ours_widgets
    )
    assert {f"extra__hss__{k}" for k in ("enterprise_project_id", "rate", "concurrency")} <= set(
        ours_widgets
    )


def test_the_connection_form_hides_relabels_and_explains_its_fields(airflow: AirflowEnv) -> None:
    """What the UI draws: the behaviour and the form fields as Airflow's ProvidersManager
    holds them, read from the provider info without the deprecated per-hook methods."""
    found = airflow.python(
        "import json, warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "m = ProvidersManager()\n"
        "w = {k: [v.field['schema'].get('title'), v.is_sensitive]\n"
        "     for k, v in m.connection_form_widgets.items() if k.startswith('extra__hss__')}\n"
        "print(json.dumps({'behaviour': m.field_behaviours['hss'], 'widgets': w}))"
    )
    behaviour = found["behaviour"]
    assert set(behaviour["hidden_fields"]) == {"host", "schema", "port"}
    assert set(behaviour["relabeling"]) == {"login", "password"}
    assert behaviour["placeholders"]["extra__hss__region"] == "cn-north-4"
    assert behaviour["placeholders"]["extra__hss__enterprise_project_id"] == "all_granted_eps"
    widgets = found["widgets"]
    assert widgets["extra__hss__project_ids"] == ["Project IDs", False]
    assert widgets["extra__hss__security_token"][1] is True  # a secret: masked in the form


def _hss_connection(simulator: RunningSimulator, token: str) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_HSS_DEFAULT": json.dumps(
            {
                "conn_type": "hss",
                "password": token,
                "extra": {"endpoint": simulator.base_url, "project_ids": ",".join(PROJECT_RECORDS)},
            }
        ),
    }


def test_airflow_connections_test_reads_one_page_of_the_first_project(
    airflow: AirflowEnv, simulator: RunningSimulator
) -> None:
    before = len(simulator.stats.log)

    done = airflow.command(
        "connections", "test", "hss_default", env=_hss_connection(simulator, TOKEN)
    )

    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Connection success!" in done.stdout
    [request] = list(simulator.stats.log)[before:]  # one small page of the first project
    assert (request.project_id, request.offset, request.limit) == ("proj-alpha", 0, 10)
    assert TOKEN not in done.stdout + done.stderr


def test_airflow_connections_test_fails_with_the_apis_error_and_never_the_token(
    airflow: AirflowEnv, simulator: RunningSimulator
) -> None:
    bad_token = "rejected-" + secrets.token_hex(24)

    done = airflow.command(
        "connections", "test", "hss_default", env=_hss_connection(simulator, bad_token)
    )

    output = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 1, output[-3000:]
    assert "Connection failed!" in output
    assert "AuthError: the credentials were rejected" in output
    assert "HTTP 401" in output and "error_code APIG.0301" in output
    assert "project proj-alpha" in output  # the first project, named
    assert bad_token not in output


# ------------------------------------------------------------------- the operator's on_kill


def test_sigterm_stops_the_operator_cleanly_through_on_kill(
    airflow: AirflowEnv, tmp_path: Path
) -> None:
    """Airflow 3 stops a task with SIGTERM, whose handler calls ``on_kill`` on the thread
    that runs the sync: the run is cancelled, its staging removed, nothing published."""
    slow = SimulatorConfig(records=4_000, tokens=frozenset({TOKEN}), seed=9, latency_ms=30)
    out = tmp_path / "lake"
    with simulator_in_thread(slow) as hss:
        env = {
            **airflow.base_env,
            "AIRFLOW_CONN_HSS_DEFAULT": json.dumps(
                {
                    "conn_type": "hss",
                    "password": TOKEN,
                    "extra": {"endpoint": hss.base_url, "project_ids": "p1,p2", "rate": 0},
                }
            ),
        }
        process = subprocess.Popen(
            [str(AIRFLOW_BIN / "python"), str(KILL_RUNNER), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        while hss.stats.requests < 6 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        staged = list((tmp_path / "lake.connector" / "staging").rglob("*"))
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        requests = hss.stats.requests

    assert process.returncode == 0, (stdout + stderr)[-5000:]
    assert "raised AirflowException: HSS image sync stopped (on_kill)" in stdout, stdout + stderr
    assert staged, "the run was staging files when it was killed"
    assert requests < 4_000 * 2 / 200, "stopped, not run to its end"
    assert not list(out.rglob("*.parquet")), "nothing half-published"
    assert not (tmp_path / "lake.connector" / "staging").exists(), "staging removed"
    assert TOKEN not in stdout + stderr
