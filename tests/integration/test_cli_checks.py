"""Everything checkable is checked before the first request, by the real CLI: exit 2, a
one-line error naming the flag or the config file's key, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from connector.cli import main
from connector.simulator import FaultConfig, ProjectFailure, SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import TOKEN

BASE = ("sync", "--project-id", "p1", "--endpoint", "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--read-timeout", "nan"], "ConfigError: flag --read-timeout: expected a finite number"),
        (["--max-retry-time", "nan"], "ConfigError: flag --max-retry-time: expected a finite"),
        (["--connect-timeout", "-1"], "ConfigError: flag --connect-timeout: must be a number of"),
        (["--request-timeout", "0"], "ConfigError: flag --request-timeout: must be a number of"),
    ],
)
def test_a_float_flag_must_be_finite_and_in_range(
    cli: Cli, tmp_path: Path, flags: list[str], message: str
) -> None:
    result = cli(*BASE, "--out", str(tmp_path), *flags, env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "--timeout:" not in result.stderr and "Traceback" not in result.stderr


def test_a_utf16_config_file_is_a_configuration_error(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(f'out = "{tmp_path / "lake"}"\nrate = 5\n', encoding="utf-16")
    result = cli(*BASE, "--config", str(config), env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"ConfigError: file {config}: the config file is not UTF-8 text"
    )
    assert "UTF-16" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_filter_in_the_config_file_is_named_by_its_key(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(f'out = "{tmp_path / "lake"}"\n[filters]\nscan_status = "waiting"\n')
    result = cli(*BASE, "--config", str(config), env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert (
        f"ConfigError: file {config} key filters.scan_status: 'waiting' is not one of"
        in result.stderr
    )
    assert "--scan-status" not in result.stderr


@pytest.mark.parametrize("value", ["-5", "lots", "nan%", "150%"])
def test_a_bad_total_num_tolerance_is_named_with_its_value(
    cli: Cli, tmp_path: Path, value: str
) -> None:
    result = cli(
        *BASE, "--out", str(tmp_path), "--total-num-tolerance", value, env={"HSS_AUTH_TOKEN": TOKEN}
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "ConfigError: flag --total-num-tolerance: expected a number of records like 10 or a "
        f"percentage of total_num like 0.5% (from 0 to 100); 0 means exact, got '{value}'"
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_total_num_tolerance_in_the_config_file_is_named_by_its_key(
    cli: Cli, tmp_path: Path
) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(f'out = "{tmp_path / "lake"}"\ntotal_num_tolerance = -3\n')
    result = cli(*BASE, "--config", str(config), env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert f"ConfigError: file {config} key total_num_tolerance: expected" in result.stderr
    assert "got '-3'" in result.stderr


# ------------------------------------------------- exit codes by precedence, read-only --out

FIRST = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SECOND = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_projects_failing_differently_exit_with_the_worst_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One project refused by the API (3), another with invalid records over the limit (5):
    the run exits 5 (data check over API), not the 1 it once collapsed to."""
    faults = FaultConfig(
        fraction_rate=0.2,
        projects=frozenset({SECOND}),
        project_failures={FIRST: ProjectFailure(status=403, error_code="HSS.0013")},
    )
    sim_config = SimulatorConfig(seed=7, records=200, tokens=frozenset({TOKEN}), faults=faults)
    monkeypatch.setenv("HSS_AUTH_TOKEN", TOKEN)
    report = tmp_path / "report.json"
    with simulator_in_thread(sim_config) as sim:
        code = main(
            [
                *("sync", "--endpoint", sim.base_url, "--out", str(tmp_path / "lake")),
                *("--project-id", FIRST, "--project-id", SECOND, "--rate", "0"),
                *("--max-quarantined", "0", "--report", str(report), "--progress", "off"),
            ]
        )
    written = orjson.loads(report.read_bytes())
    codes = {p: written["projects"][p]["exit_code"] for p in (FIRST, SECOND)}
    assert codes == {FIRST: 3, SECOND: 5}, capsys.readouterr().err
    assert code == 5 and (written["status"], written["exit_code"]) == ("failed", 5)


@pytest.mark.parametrize("command", ["sync", "check"])
def test_a_read_only_out_is_the_same_configuration_error_from_sync_and_check(
    small_disk: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = small_disk / "lake"
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    monkeypatch.setenv("HSS_AUTH_TOKEN", TOKEN)
    with simulator_in_thread(SimulatorConfig(records=30, tokens=frozenset({TOKEN}))) as sim:
        code = main(
            [command, "--endpoint", sim.base_url, "--project-id", FIRST, "--out", str(lake)]
        )
        requests = sim.stats.requests
    printed = capsys.readouterr()
    assert code == 2, printed
    said = printed.out + printed.err
    assert "ConfigError: --out: " in said and str(lake) in said
    assert "read-only file system" in said.lower()
    if command == "sync":
        assert requests == 0 and "nothing was requested" in said


@pytest.mark.parametrize(
    "args",
    [
        ("sync", "--dry-run"),
        ("--dry-run",),
        ("--dry-run", "sync", "--out", "x"),
        ("check", "--token-file", "SECRET-PATH", "--dry-run=yes"),
        ("demo", "--dry-run"),
    ],
)
def test_dry_run_anywhere_points_to_check(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)

    assert result.returncode == 2
    assert result.stderr.startswith(
        "ConfigError: command line: there is no --dry-run; use `hss-images check`"
    )
    assert "SECRET-PATH" not in result.stderr + result.stdout
    assert "yes" not in result.stderr
