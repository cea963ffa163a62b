"""What a snapshot is: the inventory of every enterprise project, as read on its date.

The API has no history, so a snapshot date other than the day of reading (or yesterday, for
a run that started just before midnight) is refused unless the user opts in; and the API's
default enterprise project ("0") would leave out every image of the others.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import EVERY_EP, TOKEN, read_rows

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _today() -> datetime:
    return datetime.now(UTC)


def _sync(
    cli: Cli, base_url: str, tmp_path: Path, *flags: str
) -> tuple[int, str, dict[str, object]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    report = tmp_path / "report.json"
    result = cli(
        "sync",
        "--project-id",
        PROJECT,
        "--out",
        str(tmp_path / "lake"),
        "--endpoint",
        base_url,
        "--rate",
        "0",
        "--report",
        str(report),
        *flags,
        env={"HSS_AUTH_TOKEN": TOKEN},
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return result.returncode, result.stderr, data


@pytest.mark.parametrize("days", [-30, -2, 1, 30])
def test_a_snapshot_date_that_is_not_the_day_of_reading_is_refused(
    cli: Cli, tmp_path: Path, days: int
) -> None:
    when = (_today() + timedelta(days=days)).date().isoformat()
    with simulator_in_thread(SimulatorConfig(records=100, tokens=frozenset({TOKEN}))) as sim:
        code, stderr, report = _sync(cli, sim.base_url, tmp_path, "--snapshot-date", when)
        requests = sim.stats.requests
    assert code == 2, stderr
    assert (
        f"ConfigError: flag --snapshot-date: {when} is not the date the inventory is read on"
        in (stderr)
    )
    assert "--allow-any-snapshot-date" in stderr and "Traceback" not in stderr
    assert requests == 0  # refused before any request, with the report saying why
    assert report["status"] == "failed" and report["exit_code"] == 2
    assert report["error_type"] == "ConfigError" and "--snapshot-date" in report["error"]
    assert not (tmp_path / "lake").exists() or not list((tmp_path / "lake").rglob("*"))


def test_yesterday_is_accepted_for_a_run_that_started_before_midnight(
    cli: Cli, tmp_path: Path
) -> None:
    yesterday = (_today() - timedelta(days=1)).date()
    with simulator_in_thread(SimulatorConfig(records=100, tokens=frozenset({TOKEN}))) as sim:
        code, stderr, report = _sync(
            cli, sim.base_url, tmp_path, "--snapshot-date", yesterday.isoformat()
        )
    assert code == 0, stderr
    assert report["snapshot_date"] == yesterday.isoformat()
    assert report["snapshot_date_origin"] == "given"
    assert {r["snapshot_date"] for r in read_rows(tmp_path / "lake")} == {yesterday}


def test_the_default_date_is_the_day_of_reading_and_the_report_says_so(
    cli: Cli, tmp_path: Path
) -> None:
    before = _today().date()
    with simulator_in_thread(SimulatorConfig(records=100, tokens=frozenset({TOKEN}))) as sim:
        code, stderr, report = _sync(cli, sim.base_url, tmp_path)
    assert code == 0, stderr
    assert report["snapshot_date"] in {before.isoformat(), _today().date().isoformat()}
    assert report["snapshot_date_origin"] == "default"


def test_an_explicit_opt_in_labels_todays_inventory_with_another_date(
    cli: Cli, tmp_path: Path
) -> None:
    past = (_today() - timedelta(days=30)).date()
    with simulator_in_thread(SimulatorConfig(records=100, tokens=frozenset({TOKEN}))) as sim:
        code, stderr, report = _sync(
            cli,
            sim.base_url,
            tmp_path,
            "--snapshot-date",
            past.isoformat(),
            "--allow-any-snapshot-date",
        )
    assert code == 0, stderr
    assert report["snapshot_date_origin"] == "opt-in"
    assert {r["snapshot_date"] for r in read_rows(tmp_path / "lake")} == {past}


def test_every_enterprise_project_is_read_unless_told_otherwise(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(
        SimulatorConfig(seed=9, records=600, tokens=frozenset({TOKEN}))
    ) as sim:
        every = sim.inventory.total(PROJECT, **EVERY_EP)
        default_only = sim.inventory.total(PROJECT, enterprise_project_id="0")
        code, stderr, report = _sync(cli, sim.base_url, tmp_path / "all")
        assert code == 0, stderr
        chosen_code, chosen_stderr, chosen = _sync(
            cli, sim.base_url, tmp_path / "zero", "--enterprise-project-id", "0"
        )
        assert chosen_code == 0, chosen_stderr
    assert default_only < every  # the API's default would have hidden images
    assert len(read_rows(tmp_path / "all" / "lake")) == every
    assert report["query"] == {"enterprise_project_id": "all_granted_eps"}
    assert len(read_rows(tmp_path / "zero" / "lake")) == default_only
    assert chosen["query"] == {"enterprise_project_id": "0"}


def test_the_config_file_can_choose_the_enterprise_project(cli: Cli, tmp_path: Path) -> None:
    config_file = tmp_path / "sync.toml"
    config_file.write_text('[filters]\nenterprise_project_id = "0"\n')
    with simulator_in_thread(
        SimulatorConfig(seed=9, records=300, tokens=frozenset({TOKEN}))
    ) as sim:
        code, stderr, report = _sync(cli, sim.base_url, tmp_path, "--config", str(config_file))
        expected = sim.inventory.total(PROJECT, enterprise_project_id="0")
    assert code == 0, stderr
    assert report["query"] == {"enterprise_project_id": "0"}
    assert len(read_rows(tmp_path / "lake")) == expected
