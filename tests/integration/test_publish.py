"""Publishing under kills, overlapping runs and other queries, with real CLI processes.

strace widens the publish window: ``-e inject=rename:delay_enter=3s`` holds the rename that
puts a partition in place for 3 s before it happens, ``delay_exit`` for 3 s after it
happened, so a test can kill the process inside that window or let two runs meet in it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from connector import Filters
from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import TOKEN, config, sync

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
OTHER = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
TODAY = datetime.now(UTC).date().isoformat()
PARTITION = f"project_id={PROJECT}/snapshot_date={TODAY}"
RENAMES = "rename,renameat,renameat2"
DEFAULT_QUERY = dict(Filters().params())  # what a run without filter flags asks for
DATA_RENAME = re.compile(r'^(\d+)\s+rename(?:at2?)?\((?:AT_FDCWD, )?"[^"]*\.parquet\.partial",')


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    faults = FaultConfig(fraction_rate=0.01)  # a quarantine in every run
    sim_config = SimulatorConfig(seed=71, records=3_000, tokens=frozenset({TOKEN}), faults=faults)
    with simulator_in_thread(sim_config) as served:
        yield served


def _expected(sim: Any, project: str = PROJECT, **filters: Any) -> int:
    return int(
        sim.inventory.total(project, **DEFAULT_QUERY, **filters)
        - len(sim.inventory.quarantine_ids(project, **DEFAULT_QUERY, **filters))
    )


def _args(sim: Any, out: Path, *extra: str) -> list[str]:
    return [
        "sync",
        "--out",
        str(out),
        "--endpoint",
        sim.base_url,
        "--project-id",
        PROJECT,
        "--progress",
        "off",
        "--snapshot-date",
        TODAY,  # as the paths below say, also when the test crosses midnight
        *extra,
    ]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSS_")}
    env["HSS_AUTH_TOKEN"] = TOKEN
    return env


def _strace() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.skip(
            "strace is not installed (./dev test installs it); it widens the publish window"
        )
    probe = subprocess.run(
        [path, "-f", "--seccomp-bpf", "-qq", "-e", "trace=rename", "-o", "/dev/null", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace processes here (ptrace refused): {probe.stderr.strip()}")
    return path


def _spawn(args: list[str], *, log: Path | None = None, inject: str = "") -> subprocess.Popen[str]:
    """The real CLI; under strace with ``inject`` (e.g. ``rename:delay_enter=3s``) if given."""
    command = [sys.executable, "-m", "connector.cli", *args]
    if log is not None:
        traced = inject.split(":", 1)[0]
        command = [
            _strace(),
            "-f",
            "--seccomp-bpf",
            "-qq",
            "-s",
            "4096",
            "-o",
            str(log),
            "-e",
            f"trace={traced}",
            "-e",
            f"inject={inject}",
            *command,
        ]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )


def _visible(out: Path) -> list[Path]:
    """What a reader of OUT/**/*.parquet picks up."""
    return sorted(out.rglob("*.parquet"))


def _read_all_ways(out: Path) -> tuple[int, set[str]]:
    """Rows and run ids as DuckDB, polars and pyarrow read the lake; they must agree."""
    [duck] = duckdb.sql(
        f"select count(*), list(distinct run_id) "
        f"from read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    frame = pl.scan_parquet(str(out), hive_partitioning=True).select("run_id").collect()
    table = ds.dataset(str(out), format="parquet", partitioning="hive").to_table(["run_id"])
    assert frame.height == table.num_rows == duck[0]
    return int(duck[0]), set(duck[1])


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _process_of(tid: int) -> int:
    status = Path(f"/proc/{tid}/status").read_text()
    return int(re.search(r"^Tgid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]


def _rename_entered(log: Path) -> int | None:
    """The thread id of a process that has entered the rename putting data in place."""
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        match = DATA_RENAME.match(line)
        if match:
            return int(match.group(1))
    return None


def _first_run(cli: Cli, sim: Any, out: Path) -> tuple[int, str]:
    result = cli(*_args(sim, out, "--rate", "0"), env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    rows, runs = _read_all_ways(out)
    assert rows == _expected(sim) and len(runs) == 1
    return rows, runs.pop()


@pytest.mark.process
@pytest.mark.parametrize(
    ("window", "survivor"),
    [("delay_enter", "old"), ("delay_exit", "new")],
    ids=["killed-before-the-rename", "killed-right-after-the-rename"],
)
def test_sigkill_while_publishing_leaves_the_old_or_the_new_snapshot_never_both(
    cli: Cli, sim: Any, tmp_path: Path, window: str, survivor: str
) -> None:
    out = tmp_path / "lake"
    rows, old_run = _first_run(cli, sim, out)
    before = {(p.name, p.stat().st_ino) for p in _visible(out)}
    log = tmp_path / "strace.log"

    process = _spawn(_args(sim, out, "--rate", "0"), log=log, inject=f"{RENAMES}:{window}=3s")
    tid = _wait_for(lambda: _rename_entered(log), 60, "the publishing rename")
    pid = _process_of(tid)
    if window == "delay_exit":  # the rename has happened: wait until a reader can see it
        _wait_for(lambda: {(p.name, p.stat().st_ino) for p in _visible(out)} != before, 2.5, "it")
    os.kill(pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode != 0, "the run ended before it was killed"

    assert len(_visible(out)) == 1, _visible(out)  # one snapshot, never two
    got_rows, runs = _read_all_ways(out)  # and it reads as a directory in every reader
    assert got_rows == rows and len(runs) == 1
    assert (runs == {old_run}) == (survivor == "old"), runs

    rerun = cli(*_args(sim, out, "--rate", "0"), env={"HSS_AUTH_TOKEN": TOKEN})
    assert rerun.returncode == 0, rerun.stderr
    assert len(_visible(out)) == 1 and _read_all_ways(out)[0] == rows


class _Watcher(threading.Thread):
    """Lists the partition and opens its files every few milliseconds, as a reader would."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.stop = threading.Event()
        self.files_seen: set[int] = set()
        self.rows_seen: set[int] = set()
        self.looks = 0

    def run(self) -> None:
        while not self.stop.is_set():
            files = sorted(self.directory.glob("*.parquet"))
            self.files_seen.add(len(files))
            for file in files:
                with contextlib.suppress(FileNotFoundError):  # gone since the listing
                    self.rows_seen.add(pq.read_metadata(file).num_rows)
            self.looks += 1
            time.sleep(0.002)


@pytest.mark.process
def test_two_processes_publishing_one_partition_at_once_leave_one_complete_snapshot(
    cli: Cli, sim: Any, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    rows, _ = _first_run(cli, sim, out)
    watcher = _Watcher(out / PARTITION)
    watcher.start()
    inject = f"{RENAMES},unlink,unlinkat:delay_enter=1s"  # both runs linger in publishing
    runs = [
        _spawn(
            _args(sim, out, "--rate", "0", "--report", str(tmp_path / f"report{n}.json")),
            log=tmp_path / f"strace{n}.log",
            inject=inject,
        )
        for n in (1, 2)
    ]
    try:
        results = [run.communicate(timeout=120) for run in runs]
    finally:
        watcher.stop.set()
        watcher.join()
    for run, (_, stderr) in zip(runs, results, strict=True):
        assert run.returncode == 0, stderr
    reports = [orjson.loads((tmp_path / f"report{n}.json").read_bytes()) for n in (1, 2)]
    assert _rename_entered(tmp_path / "strace1.log") or _rename_entered(tmp_path / "strace2.log")

    assert watcher.looks > 100
    assert watcher.files_seen == {1}, "a reader saw two snapshots of the partition, or none"
    assert watcher.rows_seen == {rows}
    got_rows, in_place = _read_all_ways(out)
    assert got_rows == rows and len(in_place) == 1
    statuses = {r["run_id"]: r["projects"][PROJECT] for r in reports}
    assert in_place <= set(statuses)
    for run_id, project in statuses.items():  # a run that lost says which run it kept
        if project["status"] == "superseded":
            assert in_place == {project["superseded_by"]} != {run_id}
        else:
            assert project["status"] == "published", project


@pytest.mark.process
def test_an_older_run_finishing_last_does_not_replace_the_newer_snapshot(
    cli: Cli, sim: Any, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    rows, _ = _first_run(cli, sim, out)
    requests = sim.stats.requests
    slow = _spawn(_args(sim, out, "--rate", "2", "--report", str(tmp_path / "slow.json")))
    _wait_for(lambda: sim.stats.requests > requests, 60, "the slow run's first request")
    # the fast run starts later (its stamp is newer) and finishes first
    fast = cli(
        *_args(sim, out, "--rate", "0", "--report", str(tmp_path / "fast.json")),
        env={"HSS_AUTH_TOKEN": TOKEN},
    )
    assert fast.returncode == 0, fast.stderr
    _, stderr = slow.communicate(timeout=120)
    assert slow.returncode == 0, stderr  # a superseded run is not a failure

    newer = orjson.loads((tmp_path / "fast.json").read_bytes())
    older = orjson.loads((tmp_path / "slow.json").read_bytes())
    assert older["status"] == "success"
    assert older["projects"][PROJECT]["status"] == "superseded"
    assert older["projects"][PROJECT]["superseded_by"] == newer["run_id"]
    assert older["projects"][PROJECT]["files"] == []
    assert f"not published: run {newer['run_id']}" in stderr
    assert _read_all_ways(out) == (rows, {newer["run_id"]})
    stamp = pq.read_metadata(out / PARTITION / "data.parquet").metadata
    assert stamp[b"hss.run_id"].decode() == newer["run_id"]
    assert datetime.fromisoformat(stamp[b"hss.run_started_at"].decode()).tzinfo is not None
    quarantine = Path(f"{out}.connector/quarantine/{PARTITION}/quarantine.jsonl")
    assert {orjson.loads(line)["run_id"] for line in quarantine.read_bytes().splitlines()} == {
        newer["run_id"]
    }


def test_a_run_with_another_query_refuses_the_lake_before_any_request(
    cli: Cli, sim: Any, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    rows, run = _first_run(cli, sim, out)
    before = {p: p.read_bytes() for p in _visible(out)}
    requests = sim.stats.requests
    other_enterprise_project = "0" if DEFAULT_QUERY.get("enterprise_project_id") != "0" else "1"
    for flags in (
        ["--scan-status", "success"],
        ["--enterprise-project-id", other_enterprise_project],
    ):
        refused = cli(*_args(sim, out, *flags), env={"HSS_AUTH_TOKEN": TOKEN})
        assert refused.returncode == 2, refused.stderr
        assert "ConfigError: --out:" in refused.stderr and "another query" in refused.stderr
        assert "--out of its own" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert sim.stats.requests == requests, "a refused run sent a request"
    assert {p: p.read_bytes() for p in _visible(out)} == before
    assert _read_all_ways(out) == (rows, {run})

    marker = orjson.loads(Path(f"{out}.connector/lake.json").read_bytes())
    assert marker["query"] == DEFAULT_QUERY and marker["layout"] == 2
    metadata = pq.read_metadata(out / PARTITION / "data.parquet").metadata
    assert orjson.loads(metadata[b"hss.query"]) == DEFAULT_QUERY

    # a filtered extract has a lake of its own, and is refused by the full one
    extract = tmp_path / "success-only"
    filtered = cli(*_args(sim, extract, "--scan-status", "success"), env={"HSS_AUTH_TOKEN": TOKEN})
    assert filtered.returncode == 0, filtered.stderr
    assert _read_all_ways(extract)[0] == _expected(sim, scan_status="success") < rows
    full = cli(*_args(sim, extract), env={"HSS_AUTH_TOKEN": TOKEN})
    assert full.returncode == 2 and 'scan_status="success"' in full.stderr, full.stderr


def test_a_partition_of_another_query_is_never_replaced_even_without_the_marker(
    sim: Any, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    first_config = config(sim.base_url, out, (PROJECT,), snapshot_date=date.fromisoformat(TODAY))
    first = sync(first_config)
    assert first.status == "success", first.summary()
    Path(f"{out}.connector/lake.json").unlink()  # someone removed the lake's marker
    before = (out / PARTITION / "data.parquet").read_bytes()
    filtered = replace(first_config, filters=Filters(scan_status="success"))
    report = sync(filtered)
    project = report.projects[PROJECT]
    assert (report.exit_code, project.error_type) == (1, "OutputError"), report.summary()
    assert "holds another query's inventory" in (project.error or "")
    assert (out / PARTITION / "data.parquet").read_bytes() == before


def _legacy_lake(sim: Any, out: Path) -> dict[str, bytes]:
    """A lake as version 0.1 left it, from a run of this one: names and places of layout 1.

    Version 0.1 wrote ``part-<run_id>.parquet``, ``OUT/_quarantine/<partition>/quarantine-
    <run_id>.jsonl`` and ``OUT/_staging/<run_id>/*.partial``, and could leave two data files
    in a partition (an overlap or a kill between its rename and its removal).
    """
    report = sync(
        config(sim.base_url, out, (PROJECT, OTHER), snapshot_date=date.fromisoformat(TODAY))
    )
    assert report.status == "success", report.summary()
    state = Path(f"{out}.connector")
    newest: dict[str, bytes] = {}
    for number, project in enumerate((PROJECT, OTHER)):
        partition = f"project_id={project}/snapshot_date={TODAY}"
        data = out / partition / "data.parquet"
        newest[partition] = data.read_bytes()
        data.rename(out / partition / "part-20261101T000000Z-bbbbbb.parquet")
        if number == 0:  # a second, older file left by a killed run
            pq.write_table(
                pq.read_table(out / partition / "part-20261101T000000Z-bbbbbb.parquet").slice(
                    0, 10
                ),
                out / partition / "part-20261031T000000Z-aaaaaa.parquet",
            )
        old_quarantine = out / "_quarantine" / partition
        old_quarantine.mkdir(parents=True)
        (state / "quarantine" / partition / "quarantine.jsonl").rename(
            old_quarantine / "quarantine-20261101T000000Z-bbbbbb.jsonl"
        )
    (out / "_staging" / "20261102T000000Z-cccccc").mkdir(parents=True)
    (out / "_staging" / "20261102T000000Z-cccccc" / "x.parquet.partial").write_bytes(b"PAR1")
    shutil.rmtree(state)
    with pytest.raises(pl.exceptions.InvalidOperationError, match="different file extensions"):
        pl.scan_parquet(str(out), hive_partitioning=True).collect()
    return newest


def test_a_lake_of_the_previous_layout_reads_correctly_after_one_run(
    cli: Cli, sim: Any, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    newest = _legacy_lake(sim, out)

    result = cli(*_args(sim, out, "--rate", "0"), env={"HSS_AUTH_TOKEN": TOKEN})  # one project
    assert result.returncode == 0, result.stderr
    assert "earlier version" in result.stderr

    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        f"{partition}/data.parquet" for partition in sorted(newest)
    ], "only data.parquet files are left under OUT"
    other = f"project_id={OTHER}/snapshot_date={TODAY}"
    assert (out / other / "data.parquet").read_bytes() == newest[other]  # renamed, not rewritten
    rows, runs = _read_all_ways(out)
    assert rows == _expected(sim) + _expected(sim, OTHER) and len(runs) == 2
    state = Path(f"{out}.connector")
    assert (state / "quarantine" / other / "quarantine.jsonl").exists()
    assert orjson.loads((state / "lake.json").read_bytes())["query"] == DEFAULT_QUERY
