"""``format``, ``catalog`` and ``table``: one setting each, from a flag, the config file, an
Airflow connection's extras and the operator's arguments alike."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from connector.cli import build_parser, config_from_args
from connector.errors import ConfigError
from connector.job import pipeline
from tests.unit.test_airflow_hook import (  # the operator's stand-in Airflow
    FakeRun,
    FakeTaskInstance,
    StandIn,
    _report,
    _today,
    airflow,  # noqa: F401
    as_async,
    module,  # noqa: F401
    operator,
)

ENV = {"HSS_AUTH_TOKEN": "t" * 24}
RUN = ["sync", "--endpoint", "https://hss.example.test", "--project-id", "p1"]


def _flags(*args: str) -> Any:
    return config_from_args(build_parser().parse_args([*RUN, *args]), environ=ENV)


def test_flags(tmp_path: Path) -> None:
    config = _flags("--out", str(tmp_path), "--format", "iceberg", "--catalog", "lake")
    assert (config.format, config.catalog, config.table) == ("iceberg", "lake", None)
    config = _flags("--out", str(tmp_path), "--format", "iceberg", "--table", "sec.images")
    assert (config.catalog, config.table) == (None, "sec.images")
    assert _flags("--out", str(tmp_path)).format == "parquet"


def test_a_bad_value_is_named_by_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--format: expected one of parquet, iceberg"):
        _flags("--out", str(tmp_path), "--format", "delta")
    with pytest.raises(ConfigError, match=r"--table: expected namespace\.name"):
        _flags("--out", str(tmp_path), "--format", "iceberg", "--table", "images")
    with pytest.raises(ConfigError, match="--catalog: names an Iceberg catalog"):
        _flags("--out", str(tmp_path), "--catalog", "lake")


def test_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "hss.toml"
    file.write_text(
        f'out = "{tmp_path}"\nformat = "iceberg"\ncatalog = "lake"\ntable = "sec.images"\n'
    )
    config = _flags("--config", str(file))
    assert (config.format, config.catalog, config.table) == ("iceberg", "lake", "sec.images")
    file.write_text(f'out = "{tmp_path}"\nformat = "orc"\n')
    with pytest.raises(ConfigError, match=f"file {file} key format: expected one of"):
        _flags("--config", str(file))


def test_the_connection_extras_and_the_operator_arguments(
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    airflow.connect(format="iceberg", catalog="lake")
    fake = FakeRun(_report(_today().isoformat()))
    monkeypatch.setattr(pipeline, "run_async", as_async(fake))
    operator(module, project_ids="p9").execute({"ti": FakeTaskInstance()})
    operator(module, project_ids="p9", catalog="other", table="sec.images").execute(
        {"ti": FakeTaskInstance()}
    )
    first, second = fake.configs
    assert (first.format, first.catalog, first.table) == ("iceberg", "lake", None)
    assert (second.format, second.catalog, second.table) == ("iceberg", "other", "sec.images")


def test_without_the_extra_the_run_names_the_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from connector.lake.iceberg import open_table
    from connector.lake.layout import Stamp

    monkeypatch.setitem(sys.modules, "pyiceberg", None)  # not installed
    config = _flags("--out", str(tmp_path), "--format", "iceberg")
    with pytest.raises(ConfigError, match=r"pip install 'hss-image-connector\[iceberg\]'"):
        open_table(config, Stamp("r", datetime.now(UTC), "{}"))
