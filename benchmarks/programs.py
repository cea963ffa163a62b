"""The programs measured, as commands, and the rows each one wrote.

Every program reads one simulator project with the same query (all enterprise projects)
and writes Parquet under its own output folder; the rows are counted from the Parquet
footers afterwards, and must equal the simulator's total.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .procs import Measured, measure, python_command

__all__ = [
    "TOKEN",
    "Run",
    "connector",
    "dlt_available",
    "dlt_rest_api",
    "dlt_rows_by_project",
    "minimal",
    "naive",
    "rows_by_project",
]

TOKEN = "bench-token"
PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run of one program."""

    program: str
    records: int
    rows: int
    measured: Measured
    sim_cpu_s: float
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """The sync's own duration (connector run report), else the process wall time."""
        return float(self.report.get("duration_s", self.measured.wall_s))


def parquet_rows(folder: Path) -> int:
    """Rows in every published ``*.parquet`` file under ``folder`` (staging excluded)."""
    return sum(
        pq.ParquetFile(path).metadata.num_rows
        for path in folder.rglob("*.parquet")
        if "_staging" not in path.parts
    )


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _connector_command() -> list[str]:
    script = Path(python_command()[0]).with_name("hss-images")
    return [str(script)] if script.exists() else python_command("-m", "connector.cli")


def rows_by_project(folder: Path) -> dict[str, int]:
    """Rows in the published ``*.parquet`` files under ``folder``, by ``project_id=`` folder."""
    rows: dict[str, int] = {}
    for path in folder.rglob("*.parquet"):
        if "_staging" in path.parts:
            continue
        project = next(p.split("=", 1)[1] for p in path.parts if p.startswith("project_id="))
        rows[project] = rows.get(project, 0) + pq.ParquetFile(path).metadata.num_rows
    return rows


def connector(
    base_url: str,
    project_id: str | Sequence[str],
    workdir: Path,
    *,
    rate: float | None,
    concurrency: int,
    env: dict[str, str],
    timeout_s: float,
    burst: float | None = None,
) -> tuple[Measured, int, dict[str, Any]]:
    """The connector's real CLI: ``hss-images sync``, one ``--project-id`` per project;
    ``rate``, ``burst``: None for the connector's own default."""
    work = _fresh(workdir)
    report = work / "report.json"
    projects = [project_id] if isinstance(project_id, str) else list(project_id)
    command = [
        *_connector_command(),
        "sync",
        "--endpoint",
        base_url,
        *(arg for p in projects for arg in ("--project-id", p)),
        "--out",
        str(work / "out"),
        "--enterprise-project-id",
        "all_granted_eps",
        *(("--rate", f"{rate:g}") if rate is not None else ()),
        *(("--burst", f"{burst:g}") if burst is not None else ()),
        "--concurrency",
        str(concurrency),
        "--page-size",
        str(PAGE_SIZE),
        "--progress",
        "off",
        "--report",
        str(report),
    ]
    measured = measure(command, env={**env, "HSS_AUTH_TOKEN": TOKEN}, cwd=work, timeout_s=timeout_s)
    measured.check("hss-images sync")
    return measured, parquet_rows(work / "out"), json.loads(report.read_text())


def _projects(project_id: str | Sequence[str]) -> str:
    return project_id if isinstance(project_id, str) else ",".join(project_id)


def naive(
    base_url: str,
    project_id: str | Sequence[str],
    workdir: Path,
    *,
    env: dict[str, str],
    timeout_s: float,
) -> tuple[Measured, int, dict[str, Any]]:
    """The naive loop; several projects one after another (``OUT/project_id=P/``)."""
    work = _fresh(workdir)
    command = python_command(
        "-m", "benchmarks.peers.naive", base_url, _projects(project_id), str(work / "out")
    )
    measured = measure(command, env={**env, "HSS_AUTH_TOKEN": TOKEN}, cwd=work, timeout_s=timeout_s)
    measured.check("the naive aiohttp loop")
    return measured, parquet_rows(work / "out"), {}


def minimal(
    base_url: str,
    project_id: str,
    workdir: Path,
    *,
    concurrency: int,
    env: dict[str, str],
    timeout_s: float,
    write: bool = False,
) -> tuple[Measured, int, dict[str, Any]]:
    """The yardstick: download and parse with aiohttp + orjson, write nothing; ``write``:
    also build the floor's Arrow arrays and write its Parquet file (rows counted in it)."""
    work = _fresh(workdir)
    out, schema = work / "out", work / "api.schema"
    file_args: tuple[str, ...] = ()
    if write:  # the API fields' struct, so that the yardstick imports nothing of ours
        import pyarrow as pa

        from connector.lake.writer import ROW_GROUP_ROWS
        from connector.shape.schema import file_schema, load_spec

        fields = file_schema()
        api = pa.schema([fields.field(f.name) for f in load_spec().api_fields])
        schema.write_bytes(api.serialize().to_pybytes())
        file_args = (str(out), str(schema), str(ROW_GROUP_ROWS))
    command = python_command(
        "-m", "benchmarks.peers.minimal", base_url, project_id, str(concurrency), *file_args
    )
    measured = measure(command, env={**env, "HSS_AUTH_TOKEN": TOKEN}, cwd=work, timeout_s=timeout_s)
    measured.check("the minimal aiohttp client")
    rows = parquet_rows(out) if write else int(measured.stdout.strip())
    return measured, rows, {}


def dlt_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("dlt") is not None


def dlt_rest_api(
    base_url: str,
    project_id: str | Sequence[str],
    workdir: Path,
    *,
    env: dict[str, str],
    timeout_s: float,
) -> tuple[Measured, int, dict[str, Any]]:
    """dlt's rest_api; several projects are one resource each (``dlt_rows_by_project``)."""
    work = _fresh(workdir)
    command = python_command(
        "-m",
        "benchmarks.peers.dlt_rest_api",
        base_url,
        _projects(project_id),
        str(work / "out"),
        str(work / "pipelines"),
    )
    measured = measure(command, env={**env, "HSS_AUTH_TOKEN": TOKEN}, cwd=work, timeout_s=timeout_s)
    measured.check("the dlt rest_api pipeline")
    tables = work / "out" / "hss"  # dlt's own _dlt_* tables beside them are not counted
    folders = sorted(tables.glob("images*")) if tables.exists() else []
    return measured, sum(parquet_rows(folder) for folder in folders), {}


def dlt_rows_by_project(workdir: Path, projects: Sequence[str]) -> dict[str, int]:
    """Rows dlt wrote for each project: resource ``images_<i>`` is ``projects[i]`` (one
    project alone is ``images``)."""
    tables = workdir / "out" / "hss"
    rows = {}
    for i, project in enumerate(projects):
        folder = tables / ("images" if len(projects) == 1 else f"images_{i}")
        rows[project] = parquet_rows(folder) if folder.exists() else 0
    return rows
