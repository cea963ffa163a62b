"""The setting named by each front end deep in a run, against the simulator over real
sockets: the quarantine limit that fails a project, the memory budget's warning.
tests/unit/test_setting_names.py checks the names without a run."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector import QuarantineLimit
from connector.cli import main
from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread
from tests.unit.test_airflow_hook import (  # noqa: F401
    FakeConnection,
    FakeTaskInstance,
    StandIn,
    airflow,
    module,
)

from .helpers import TOKEN, config, sync

# --------------------------------------------- deep in a run: the quarantine limit, a warning

PROJECT = "p1"


@pytest.fixture
def simulator() -> Iterator[Any]:
    """Half the records of the project invalid, so a limit of 0 fails it."""
    faults = FaultConfig(fraction_rate=0.5)
    config = SimulatorConfig(seed=31, records=300, tokens=frozenset({TOKEN}), faults=faults)
    with simulator_in_thread(config) as sim:
        yield sim


def _limit_said(text: str) -> str:
    found = re.search(r"records failed validation, more than (.+) 0; nothing was published", text)
    assert found, text
    return found[1]


def test_the_quarantine_limit_is_named_by_key_in_the_python_api(
    simulator: Any, tmp_path: Path
) -> None:
    limit = QuarantineLimit(count=0, percent=None)
    report = sync(config(simulator.base_url, tmp_path / "lake", (PROJECT,), max_quarantined=limit))
    error = report.projects[PROJECT].error or ""
    assert report.projects[PROJECT].error_type == "QuarantineLimitError"
    assert _limit_said(error) == "max_quarantined"


def test_the_quarantine_limit_is_named_by_its_flag_on_the_command_line(
    simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("HSS_AUTH_TOKEN", TOKEN)
    report = tmp_path / "report.json"
    argv = ["sync", "--endpoint", simulator.base_url, "--project-id", PROJECT]
    argv += ["--out", str(tmp_path / "lake"), "--max-quarantined", "0", "--report", str(report)]
    assert main(argv) == 5
    said = capsys.readouterr().err
    assert _limit_said(said) == "--max-quarantined"  # in the log line and the summary
    error = orjson.loads(report.read_bytes())["projects"][PROJECT]["error"]
    assert _limit_said(error) == "--max-quarantined"  # and in the report


def test_the_quarantine_limit_is_named_by_the_operators_argument(
    simulator: Any,
    tmp_path: Path,
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
) -> None:
    airflow.connections["hss_x"] = FakeConnection(
        "hss_x", password=TOKEN, extra_dejson={"endpoint": simulator.base_url}
    )
    task = module.HssImageSyncOperator(
        task_id="t",
        out=str(tmp_path / "lake"),
        project_ids=PROJECT,
        hss_conn_id="hss_x",
        max_quarantined=0,
    )
    with pytest.raises(airflow.AirflowException) as caught:
        task.execute({"ti": FakeTaskInstance(), "logical_date": None})
    assert _limit_said(str(caught.value)) == "argument max_quarantined"


def _budget_warnings(text: str) -> list[str]:
    return re.findall(r"reads alone; (.+) raises the budget", text)


@pytest.fixture
def big_project() -> Iterator[Any]:
    config = SimulatorConfig(seed=5, records=900, tokens=frozenset({TOKEN}))
    with simulator_in_thread(config) as sim:
        yield sim


def test_a_warning_names_the_setting_as_each_front_end_does(
    big_project: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    caplog: pytest.LogCaptureFixture,
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
) -> None:
    """The memory budget a project does not fit in, with ``memory_limit`` 1 MiB."""
    with caplog.at_level(logging.WARNING, logger="connector"):
        sync(config(big_project.base_url, tmp_path / "api", (PROJECT,), memory_limit=2**20))
    assert _budget_warnings(caplog.text) == ["memory_limit"]

    airflow.connections["hss_x"] = FakeConnection(
        "hss_x",
        password=TOKEN,
        extra_dejson={"endpoint": big_project.base_url, "memory_limit": "1MiB"},
    )
    task = module.HssImageSyncOperator(
        task_id="t", out=str(tmp_path / "airflow"), project_ids=PROJECT, hss_conn_id="hss_x"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="connector"):
        task.execute({"ti": FakeTaskInstance(), "logical_date": None})
    assert _budget_warnings(caplog.text) == ["connection 'hss_x' extra memory_limit"]

    monkeypatch.setenv("HSS_AUTH_TOKEN", TOKEN)
    argv = ["sync", "--endpoint", big_project.base_url, "--project-id", PROJECT]
    assert main([*argv, "--out", str(tmp_path / "cli"), "--memory-limit", "1MiB"]) == 0
    assert _budget_warnings(capsys.readouterr().err) == ["--memory-limit (memory_limit)"]
