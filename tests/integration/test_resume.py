"""``skip_published``: a rerun of the same day resumes instead of redoing the day.

Against the simulator over a real socket: a first run publishes some projects and fails
one; the rerun with ``--skip-published`` sends no request for the published ones, leaves
their files as they were (same inode, same bytes) and reads only the failed one. Without
the setting a rerun reads and replaces every partition, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector import Filters
from connector.settings.config import Target
from connector.simulator import (
    FaultConfig,
    ProjectFailure,
    RunningSimulator,
    SimulatorConfig,
    simulator_in_thread,
)
from tests.commands import Cli

from .helpers import TOKEN, config, sync

# numeric-looking ids, as some accounts have them
PROJECTS = {"0123456789": 240, "42": 90, "proj-c": 130}
FAILING = "42"


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    """The project ``42`` answers its first 12 requests with a 503: more than one run's
    retries (10 attempts), fewer than two runs' (the first run fails it, the rerun reads it)."""
    faults = FaultConfig(project_failures={FAILING: ProjectFailure(count=12, status=503)})
    sim_config = SimulatorConfig(
        seed=23, records=10, project_records=PROJECTS, tokens=frozenset({TOKEN}), faults=faults
    )
    with simulator_in_thread(sim_config) as served:
        yield served


def _requests(sim: RunningSimulator) -> dict[str, int]:
    return {p: s.requests for p, s in sim.stats.projects.items()}


def _files(out: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file of the lake and beside it: its inode, modification time and bytes."""
    found = {}
    for path in sorted([*out.rglob("*"), *Path(f"{out}.connector").rglob("quarantine/**/*")]):
        if path.is_file():
            stat = path.stat()
            found[str(path)] = (stat.st_ino, stat.st_mtime_ns, path.read_bytes())
    return found


def test_a_rerun_with_skip_published_reads_only_what_is_not_published(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    first_cfg = config(sim.base_url, out, tuple(PROJECTS))
    first = sync(first_cfg)
    assert first.status == "partial"
    assert {p: r.status for p, r in first.projects.items()} == {
        "0123456789": "published",
        FAILING: "failed",
        "proj-c": "published",
    }
    before_files = _files(out)
    before_requests = _requests(sim)

    second = sync(replace(first_cfg, skip_published=True, run_id="resume-1"))

    assert second.status == "success" and second.exit_code == 0
    sent = {p: n - before_requests.get(p, 0) for p, n in _requests(sim).items()}
    assert sent["0123456789"] == 0 and sent["proj-c"] == 0  # no request for them
    assert sent[FAILING] > 0
    for project in ("0123456789", "proj-c"):
        skipped = second.projects[project]
        assert skipped.status == "skipped"
        assert skipped.published_by == first.run_id
        assert skipped.skipped == (
            f"already published for {first.snapshot_date} by run {first.run_id} with the "
            "same query (skip_published)"
        )
        assert skipped.records_in_place == first.projects[project].records_written
        assert skipped.records_written == 0 and skipped.requests == 0
        assert skipped.files == first.projects[project].files
    read = second.projects[FAILING]
    assert read.status == "published"
    assert read.records_written == sim.inventory.total(
        FAILING, enterprise_project_id="all_granted_eps"
    )
    after_files = _files(out)
    for path, seen in before_files.items():  # untouched: same inode, time and bytes
        assert after_files[path] == seen, path
    assert set(after_files) - set(before_files) == set(read.files)

    summary = second.summary()
    assert "0123456789: skipped, 240 records in place (already published for" in summary

    # and the report as JSON, as Airflow and the report file have it
    data = second.to_dict()
    assert data["projects"]["proj-c"]["status"] == "skipped"
    assert data["projects"]["proj-c"]["published_by"] == first.run_id


def test_without_the_setting_a_rerun_refreshes_every_partition(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    cfg = config(sim.base_url, out, ("0123456789",))
    first = sync(cfg)
    before = _requests(sim)["0123456789"]

    again = sync(replace(cfg, run_id="refresh-1"))

    assert again.projects["0123456789"].status == "published"
    assert _requests(sim)["0123456789"] > before
    assert again.projects["0123456789"].files == first.projects["0123456789"].files
    [data] = out.rglob("*.parquet")
    assert b"refresh-1" in data.read_bytes()  # the new run's stamp is in place


def test_a_partition_of_another_query_is_read_again(sim: RunningSimulator, tmp_path: Path) -> None:
    """A project with a query of its own: its partition is skipped only when written with
    that query (the lake's marker holds the run's; the partition's stamp holds its own)."""
    out = tmp_path / "lake"
    cfg = config(sim.base_url, out, ("proj-c",))
    sync(cfg)
    before = _requests(sim)["proj-c"]

    own = Target("proj-c", sim.base_url, Filters(has_vul=True))
    report = sync(replace(cfg, projects=(own,), skip_published=True, run_id="other-q"))

    assert _requests(sim)["proj-c"] > before  # not skipped: read again
    # and then refused at publishing: the partition in place is another query's snapshot
    assert report.projects["proj-c"].status == "failed"
    assert "holds another query's inventory" in (report.projects["proj-c"].error or "")


def test_the_flag_file_key_and_report_file(sim: RunningSimulator, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "lake"
    today = datetime.now(UTC).date().isoformat()
    common = [
        "sync", "--out", str(out), "--endpoint", sim.base_url, "--progress", "off",
        "--project-id", "0123456789", "--snapshot-date", today,
    ]  # fmt: skip
    env = {"HSS_AUTH_TOKEN": TOKEN}
    assert cli(*common, env=env).returncode == 0
    report = tmp_path / "report.json"

    flagged = cli(*common, "--skip-published", "--report", str(report), env=env)

    assert flagged.returncode == 0, flagged.stderr
    data = json.loads(report.read_text())
    assert data["projects"]["0123456789"]["status"] == "skipped"
    assert "skipped, 240 records in place" in flagged.stderr + flagged.stdout

    settings = tmp_path / "hss.toml"
    settings.write_text("skip_published = true\n")
    filed = cli(*common, "--config", str(settings), "--report", str(report), env=env)
    assert filed.returncode == 0, filed.stderr
    assert json.loads(report.read_text())["projects"]["0123456789"]["status"] == "skipped"

    settings.write_text('skip_published = "maybe"\n')
    bad = cli(*common, "--config", str(settings), env=env)
    assert bad.returncode == 2
    assert f"file {settings} key skip_published: expected true or false, got 'maybe'" in bad.stderr


def test_a_damaged_partition_is_read_and_replaced(sim: RunningSimulator, tmp_path: Path) -> None:
    """A partition holding a file that is not the connector's Parquet is no snapshot of this
    query: the project is read again and its snapshot put in place."""
    out = tmp_path / "lake"
    cfg = config(sim.base_url, out, ("proj-c",))
    first = sync(cfg)
    [data] = (Path(p) for p in first.projects["proj-c"].files if p.endswith(".parquet"))
    data.write_bytes(b"not parquet")

    again = sync(replace(cfg, skip_published=True, run_id="after-damage"))

    assert again.projects["proj-c"].status == "published"
    assert b"after-damage" in data.read_bytes()
