"""The README documents every flag, environment variable and exit code the CLI has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from connector.cli import ENVIRONMENT, EXIT_CODES, build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["sync", "simulate", "demo"])
def test_every_flag_is_documented(command: str) -> None:
    section = README[README.index(f"### `hss-images {command}`") :]
    for action in _subcommands()[command]._actions:
        for flag in action.option_strings:
            if flag in ("-h", "--help"):
                continue
            assert re.search(rf"(`|, ){re.escape(flag)}[ `,]", section), (
                f"{command} {flag} is not documented"
            )


def test_every_top_level_flag_is_documented() -> None:
    section = README[README.index("## CLI reference") :]
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`hss-images {flag}`" in section, f"{flag} is not documented"


def test_every_environment_variable_is_documented() -> None:
    from connector.simulator.cli import ENVIRONMENT as SIMULATOR_ENVIRONMENT

    for name in [*ENVIRONMENT, *SIMULATOR_ENVIRONMENT]:
        assert f"`{name}" in README, name


def test_every_exit_code_is_documented() -> None:
    table = README[README.index("### Exit codes") :]
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", table, re.MULTILINE), code


def test_quick_start_is_two_commands() -> None:
    block = README[README.index("## Quick start") :]
    commands = re.search(r"```sh\n(.*?)```", block, re.DOTALL)
    assert commands is not None
    lines = [line for line in commands.group(1).splitlines() if line.strip()]
    assert [line.split("#")[0].strip() for line in lines] == ["./dev demo", "./dev test"]


def test_readme_queries_are_the_ones_the_tests_run() -> None:
    assert "read_parquet('/data/lake/hss_images/**/*.parquet', hive_partitioning = true)" in README
    assert 'spark.read.parquet("/data/lake/hss_images")' in README
    spark_test = (Path(__file__).resolve().parents[1] / "ecosystem" / "test_spark.py").read_text()
    assert "spark.read.parquet(str(tmp_path))" in spark_test


def test_no_unfinished_sections() -> None:
    assert not re.search(r"\b[A-Z]+_SECTION\b|TODO|TBD", README)
