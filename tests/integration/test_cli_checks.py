"""Everything checkable is checked before the first request, by the real CLI: exit 2, a
one-line error naming the flag or the config file's key, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import TOKEN, cli

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
    tmp_path: Path, flags: list[str], message: str
) -> None:
    result = cli(*BASE, "--out", str(tmp_path), *flags, env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "--timeout:" not in result.stderr and "Traceback" not in result.stderr


def test_a_utf16_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(f'out = "{tmp_path / "lake"}"\nrate = 5\n', encoding="utf-16")
    result = cli(*BASE, "--config", str(config), env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"ConfigError: file {config}: the config file is not UTF-8 text"
    )
    assert "UTF-16" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_filter_in_the_config_file_is_named_by_its_key(tmp_path: Path) -> None:
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
def test_a_bad_total_num_tolerance_is_named_with_its_value(tmp_path: Path, value: str) -> None:
    result = cli(
        *BASE, "--out", str(tmp_path), "--total-num-tolerance", value, env={"HSS_AUTH_TOKEN": TOKEN}
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "ConfigError: flag --total-num-tolerance: expected a number of records like 10 or a "
        f"percentage of total_num like 0.5% (from 0 to 100); 0 means exact, got '{value}'"
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_total_num_tolerance_in_the_config_file_is_named_by_its_key(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(f'out = "{tmp_path / "lake"}"\ntotal_num_tolerance = -3\n')
    result = cli(*BASE, "--config", str(config), env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr
    assert f"ConfigError: file {config} key total_num_tolerance: expected" in result.stderr
    assert "got '-3'" in result.stderr
