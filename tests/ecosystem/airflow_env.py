"""A real Airflow 3 for the tests: its own virtualenv, a migrated AIRFLOW_HOME, DAG runs.

Airflow lives in ``.venv-airflow`` (made by ``./dev test``), with the OpenLineage provider.
The tests run from the project's virtualenv, serve the simulator themselves and run DAGs
with ``dag.test()`` in a subprocess (``airflow_runner.py``): the connection is given as
``AIRFLOW_CONN_HSS_DEFAULT``, the lake path as ``AIRFLOW_VAR_HSS_IMAGES_LAKE_PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _airflow_venv() -> Path:
    """This tree's ``.venv-airflow``, else the one beside the virtualenv running the tests
    (a git worktree shares the main tree's virtualenvs)."""
    own = ROOT / ".venv-airflow"
    beside = Path(sys.prefix).parent / ".venv-airflow"
    return own if own.exists() or not beside.exists() else beside


AIRFLOW_BIN = _airflow_venv() / "bin"
EXAMPLE_DAG = ROOT / "examples" / "hss_images_dag.py"
LINEAGE_DAG = Path(__file__).with_name("lineage_dag.py")
DOWNSTREAM_DAG = Path(__file__).with_name("downstream_dag.py")
RETRY_DAG = Path(__file__).with_name("retry_dag.py")
RUNNER = Path(__file__).with_name("airflow_runner.py")
SUBPROCESS_TIMEOUT_S = 120

NEEDS_AIRFLOW = [
    pytest.mark.airflow,
    pytest.mark.skipif(
        not (AIRFLOW_BIN / "python").exists(),
        reason=f"no Airflow virtualenv at {AIRFLOW_BIN.parent} (./dev test creates it: "
        "python3 -m venv .venv-airflow && .venv-airflow/bin/pip install "
        "-r requirements/airflow.txt -e .)",
    ),
]
"""``pytestmark`` of a module that runs Airflow."""


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

    def run_dag(
        self,
        connection: dict[str, Any],
        lake: Path,
        logical_date: date,
        *,
        dag: Path = EXAMPLE_DAG,
        variable: str = "hss_images_dag",
        env: dict[str, str] | None = None,
    ) -> DagRun:
        """Run the DAG ``variable`` of the file ``dag`` (copied into the DAG folder) once."""
        run_env = {
            **self.base_env,
            "AIRFLOW_CONN_HSS_DEFAULT": json.dumps(connection),
            "AIRFLOW_VAR_HSS_IMAGES_LAKE_PATH": str(lake),
            **(env or {}),
        }
        result = self.home / f"result-{logical_date}-{uuid.uuid4().hex[:8]}.json"
        done = subprocess.run(
            [
                str(AIRFLOW_BIN / "python"),
                str(RUNNER),
                str(self.dags / dag.name),
                variable,
                logical_date.isoformat(),
                str(result),
            ],
            env=run_env,
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

    def python(self, code: str, env: dict[str, str] | None = None) -> Any:
        """Run ``code`` under the Airflow virtualenv; it prints one JSON value, returned."""
        done = subprocess.run(
            [str(AIRFLOW_BIN / "python"), "-c", code],
            env={**self.base_env, **(env or {})},
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


def clean_environ() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "HSS_", "PYTHON", "VIRTUAL_ENV", "OPENLINEAGE"))
    }


def migrated_home(home: Path, dag_files: Sequence[Path]) -> AirflowEnv:
    """A migrated AIRFLOW_HOME at ``home`` whose DAG folder holds ``dag_files``."""
    dags = home / "dags"
    dags.mkdir()
    for dag in dag_files:
        shutil.copy(dag, dags / dag.name)
    env = {
        **clean_environ(),
        # this tree's code, ahead of the tree the virtualenv's editable install names
        "PYTHONPATH": str(ROOT),
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


def openlineage_env(events: Path) -> dict[str, str]:
    """Settings that make Airflow's OpenLineage provider append every event to ``events``
    (its FILE transport, one JSON event a line)."""
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": OPENLINEAGE_NAMESPACE,
    }


OPENLINEAGE_NAMESPACE = "hss-tests"


def openlineage_events(events: Path, job: str) -> list[dict[str, Any]]:
    """The events of the job named ``job`` (``dag_id.task_id``), in the order written."""
    every = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    return [e for e in every if e["job"]["name"] == job]
