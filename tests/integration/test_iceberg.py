"""``--format iceberg``: one commit per run into an Iceberg table (embedded SQL catalog).

Each run reads its own simulator over real sockets, so each snapshot has a truth of its own:
the current table and every earlier snapshot are compared with the inventory that was served
when it was committed, row by row, with no duplicate.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConfigError
from connector.job.pipeline import run_async
from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import EVERY_EP, TOKEN, config, served, sync
from .tiny_server import Request, error, records, tiny_server

pytest.importorskip("pyiceberg.catalog.sql")

from pyiceberg.catalog.sql import SqlCatalog

from connector.lake.iceberg import embedded_properties, iceberg_schema

PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")
TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)
KEY = ("image_id", "image_digest", "image_name", "image_version", "host_id", "agent_id")


def _table(out: Path) -> Any:
    return SqlCatalog("hss", **embedded_properties(str(out))).load_table("hss.image_local_info")


def _keys(rows: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter((r["project_id"], str(r["snapshot_date"]), *(r[k] for k in KEY)) for r in rows)


def _truth(sim: Any, day: Any) -> Counter[tuple[Any, ...]]:
    return _keys(
        [
            {**served(r), "project_id": p, "snapshot_date": day}
            for p in PROJECTS
            for r in sim.inventory.records(p, **EVERY_EP)
        ]
    )


def _rows(table: Any, snapshot_id: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
    return rows


@pytest.fixture
def sims() -> Iterator[list[Any]]:
    """Three inventories, as three days of a changing estate would serve them."""
    with (
        simulator_in_thread(SimulatorConfig(seed=1, records=300, tokens=frozenset({TOKEN}))) as a,
        simulator_in_thread(SimulatorConfig(seed=2, records=420, tokens=frozenset({TOKEN}))) as b,
        simulator_in_thread(SimulatorConfig(seed=3, records=250, tokens=frozenset({TOKEN}))) as c,
    ):
        yield [a, b, c]


def test_two_runs_a_day_and_one_the_next_equal_the_truth_at_every_snapshot(
    sims: list[Any], tmp_path: Path
) -> None:
    out = tmp_path / "table"
    days = (YESTERDAY, YESTERDAY, TODAY)
    reports = []
    for number, (sim, day) in enumerate(zip(sims, days, strict=True)):
        cfg = config(sim.base_url, out, PROJECTS, format="iceberg", snapshot_date=day)
        reports.append(sync(replace(cfg, run_id=f"run{number}")))
    assert [r.status for r in reports] == ["success"] * 3
    table = _table(out)
    snapshots = table.snapshots()
    assert [s.snapshot_id for s in snapshots] == [r.table["snapshot_id"] for r in reports]
    # after each run: its day as served then, the other day as the run before left it
    yesterday_first, yesterday_second, today = (
        _truth(s, d) for s, d in zip(sims, days, strict=True)
    )
    expected = [yesterday_first, yesterday_second, yesterday_second + today]
    for snapshot, want, report in zip(snapshots, expected, reports, strict=True):
        got = _keys(_rows(table, snapshot.snapshot_id))
        assert max(got.values()) == 1  # no duplicate
        assert got == want
        summary = snapshot.summary.additional_properties
        assert summary["hss.run-id"] == report.run_id
        assert summary["hss.query"] == '{"enterprise_project_id":"all_granted_eps"}'
        assert summary["hss.connector-version"] == report.connector_version
    assert _keys(_rows(table)) == expected[-1]
    assert [s.summary.operation.value for s in snapshots] == ["append", "overwrite", "overwrite"]
    assert reports[-1].table["identifier"] == "hss.image_local_info"
    assert reports[-1].table["catalog_properties"]["uri"].startswith("sqlite:///")
    files = reports[-1].projects[PROJECTS[0]].files
    assert files and all(f.startswith(table.location()) for f in files)


def test_the_field_ids_are_the_schema_files_positions() -> None:
    """A new table numbers the fields as schemas/image_local_info.json lists them: a
    reordering of that file would renumber new tables, and this test says so."""
    ids = {f.name: f.field_id for f in iceberg_schema().fields}
    assert ids["image_name"] == 1 and ids["non_scan_reason"] == 21
    assert (ids["extra_fields"], ids["ingested_at"], ids["run_id"]) == (22, 23, 24)
    assert (ids["project_id"], ids["snapshot_date"]) == (25, 26)


def test_a_project_failing_mid_run_is_not_in_the_commit(cli: Cli, tmp_path: Path) -> None:
    healthy, broken = PROJECTS
    out = tmp_path / "table"
    first = {healthy: records("old", 30), broken: records("old", 40)}
    with tiny_server(first) as server:
        result = cli(*_args(server.base_url, out, healthy, broken), env=_env())
    assert result.returncode == 0, result.stderr

    async def refuse_the_third_page(request: Request) -> Any:
        if request.project_id == broken and request.offset >= 20:
            return error(403, "HSS.0013", "Insufficient permissions to access the resource.")
        return None

    second = {healthy: records("new", 25), broken: records("new", 50)}
    with tiny_server(second, refuse_the_third_page) as server:
        result = cli(*_args(server.base_url, out, healthy, broken), env=_env())
    assert result.returncode == 4, result.stderr  # partial
    table = _table(out)
    assert len(table.snapshots()) == 2
    rows = _rows(table)
    by_project = Counter((r["project_id"], r["image_id"].split("-")[0]) for r in rows)
    assert by_project == {(healthy, "new"): 25, (broken, "old"): 40}
    summary = table.current_snapshot().summary.additional_properties
    assert summary["hss.projects"] == f'["{healthy}"]'


def _args(base_url: str, out: Path, *projects: str) -> list[str]:
    args = ["sync", "--out", str(out), "--endpoint", base_url, "--rate", "0", "--page-size"]
    args += ["10", "--format", "iceberg", "--progress", "off", "--concurrency", "1"]
    for project in projects:
        args += ["--project-id", project]
    return args


def _env() -> dict[str, str]:
    return {"HSS_AUTH_TOKEN": TOKEN}


def test_two_overlapping_runs_the_later_started_stays_in_place(tmp_path: Path) -> None:
    """Run A starts first but reads slowly; run B starts later and commits first. A's
    commit then finds B's newer snapshot of the same partitions: A is superseded, B stays,
    whichever finished first; a partition only A read is committed by A."""
    project, only_a = PROJECTS
    out = tmp_path / "table"

    async def slow(request: Request) -> Any:
        await asyncio.sleep(0.05)
        return None

    with (
        tiny_server({project: records("a", 60), only_a: records("a", 20)}, slow) as server_a,
        tiny_server({project: records("b", 45)}) as server_b,
    ):
        cfg_a = config(server_a.base_url, out, PROJECTS, format="iceberg", run_id="a")
        cfg_b = config(server_b.base_url, out, (project,), format="iceberg", run_id="b")

        async def both() -> tuple[Any, Any]:
            first = asyncio.create_task(run_async(replace(cfg_a, fetch=_pages(cfg_a, 10))))
            await asyncio.sleep(0.2)  # A has started (its stamp is taken) and is reading
            second = await run_async(cfg_b)
            return await first, second

        report_a, report_b = asyncio.run(both())
    assert report_b.projects[project].status == "published"
    assert report_a.projects[project].status == "superseded"
    assert report_a.projects[project].superseded_by == "b"
    assert report_a.projects[only_a].status == "published"
    rows = _rows(_table(out))
    assert Counter((r["project_id"], r["run_id"]) for r in rows) == {
        (project, "b"): 45,
        (only_a, "a"): 20,
    }


def _pages(cfg: Any, size: int) -> Any:
    return replace(cfg.fetch, page_size=size, concurrency=1)


def test_a_commit_that_loses_the_race_is_built_again(
    sims: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A (started first) loads the table to commit; run B commits in between; A's
    commit is refused by the catalog, built again on B's snapshot, and committed: A started
    first but finished last, and a later run's partition is never replaced by it unless
    it started later. Here A started first, so B's snapshot stays and A is superseded."""
    from connector.lake import iceberg

    out = tmp_path / "table"
    sim_a, sim_b, _ = sims
    cfg_a = config(sim_a.base_url, out, PROJECTS[:1], format="iceberg", run_id="a")
    cfg_b = config(sim_b.base_url, out, PROJECTS[:1], format="iceberg", run_id="b")
    attempts: list[int] = []
    original = iceberg.Table._commit_once

    def b_commits_first(self: Any, table: Any, mine: Any) -> int:
        attempts.append(1)
        if self.stamp.run_id == "a" and len(attempts) == 1:
            sync(cfg_b)  # B starts later, commits between A's load and A's commit
        return original(self, table, mine)

    monkeypatch.setattr(iceberg.Table, "_commit_once", b_commits_first)
    report_a = sync(cfg_a)
    assert report_a.table["commit_attempts"] == 2
    assert report_a.projects[PROJECTS[0]].status == "superseded"
    assert {r["run_id"] for r in _rows(_table(out))} == {"b"}
    assert len(_table(out).snapshots()) == 1


def test_settings_are_checked_before_any_request(tmp_path: Path) -> None:
    base = config("http://127.0.0.1:9", tmp_path / "t", PROJECTS)
    with pytest.raises(ConfigError, match="names an Iceberg catalog"):
        replace(base, catalog="lake")
    with pytest.raises(ConfigError, match=r"namespace\.name"):
        replace(base, format="iceberg", table="no_namespace")
    with pytest.raises(ConfigError, match="must then be a local folder"):
        replace(base, format="iceberg", out="s3://bucket/lake")
    with pytest.raises(ConfigError, match="expected one of parquet, iceberg"):
        replace(base, format="delta")  # type: ignore[arg-type]


def test_another_query_into_the_same_table_is_refused(sims: list[Any], tmp_path: Path) -> None:
    """The table records the query it holds (as lake.json does for a folder): a run of
    another query, through another OUT or catalog, is refused before any request."""
    from connector.lake.iceberg import open_table
    from connector.lake.layout import Stamp

    first = config(sims[0].base_url, tmp_path / "a", PROJECTS[:1], format="iceberg")
    assert sync(first).status == "success"
    properties = _table(tmp_path / "a").properties
    assert properties["hss.query"] == '{"enterprise_project_id":"all_granted_eps"}'
    # row groups as the folder lake's (a reader such as the diff holds one at a time)
    assert properties["write.parquet.row-group-limit"] == "64000"
    stamp = Stamp("x", datetime.now(UTC), '{"scan_status":"success"}')
    with pytest.raises(ConfigError, match="holds the inventory of another query"):
        open_table(first, stamp)


def test_the_lineage_output_is_the_table_by_location_and_by_catalog_name(
    sims: list[Any], tmp_path: Path
) -> None:
    """OpenLineage names an Iceberg table as it names files and objects, by its location
    (namespace ``file``, name the path); its catalog identifier is a ``symlinks`` TABLE."""
    import json

    from openlineage.client.serde import Serde

    from connector.airflow.lineage import SyncFacts, datasets

    out = tmp_path / "table"
    cfg = config(sims[0].base_url, out, PROJECTS, format="iceberg")
    report = sync(cfg)
    facts = SyncFacts.of(cfg).ended(report.to_dict())
    _, [output] = datasets(facts)
    event = json.loads(Serde.to_json(output))
    location = report.table["location"]
    assert location == (out / "warehouse" / "hss" / "image_local_info").as_uri()
    assert (event["namespace"], event["name"]) == ("file", location.removeprefix("file://"))
    [symlink] = event["facets"]["symlinks"]["identifiers"]
    assert symlink == {
        "namespace": f"sqlite:///{out / 'catalog.db'}",
        "name": "hss.image_local_info",
        "type": "TABLE",
    }
    catalog = event["facets"]["catalog"]
    assert (catalog["framework"], catalog["type"], catalog["name"]) == ("iceberg", "sql", "hss")
    assert event["facets"]["storage"]["storageLayer"] == "iceberg"
    statistics = event["outputFacets"]["outputStatistics"]
    assert statistics["rowCount"] == report.records_written
    assert statistics["fileCount"] == len(PROJECTS) and statistics["size"] > 0


def test_a_project_with_no_records_today_empties_its_partition_of_the_day(
    cli: Cli, tmp_path: Path
) -> None:
    emptied, kept = PROJECTS
    out = tmp_path / "table"
    with tiny_server({emptied: records("old", 12), kept: records("old", 8)}) as server:
        assert cli(*_args(server.base_url, out, emptied, kept), env=_env()).returncode == 0
    with tiny_server({emptied: [], kept: records("new", 9)}) as server:
        result = cli(*_args(server.base_url, out, emptied, kept), env=_env())
    assert result.returncode == 0, result.stderr
    rows = _rows(_table(out))
    assert Counter((r["project_id"], r["image_id"].split("-")[0]) for r in rows) == {
        (kept, "new"): 9
    }


def test_a_run_stopped_before_its_commit_commits_nothing_and_leaves_no_files(
    tmp_path: Path,
) -> None:
    """One project is staged (its data files written), the other still reading, when the
    run is cancelled (SIGTERM in the CLI): no snapshot, and the staged data files are gone."""
    fast, slow = PROJECTS
    out = tmp_path / "table"

    async def crawl(request: Request) -> Any:
        if request.project_id == slow:
            await asyncio.sleep(0.2)
        return None

    with tiny_server({fast: records("f", 30), slow: records("s", 200)}, crawl) as server:
        cfg = config(server.base_url, out, PROJECTS, format="iceberg")
        cfg = replace(cfg, fetch=replace(cfg.fetch, page_size=10, concurrency=1))
        data = out / "warehouse" / "hss" / "image_local_info" / "data"

        async def stop_once_staged() -> None:
            task = asyncio.create_task(run_async(cfg))
            while not list(data.glob(f"project_id={fast}/*/*.parquet")):  # noqa: ASYNC110 (a file, no event)
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(stop_once_staged())
    assert _table(out).current_snapshot() is None
    assert not list(data.rglob("*.parquet"))


def test_check_says_whether_the_table_is_there_and_writes_nothing(
    sims: list[Any], cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "table"
    base = ["check", "--endpoint", sims[0].base_url, "--project-id", PROJECTS[0], "--out"]
    before = cli(*base, str(out), "--format", "iceberg", env=_env(), timeout=60)
    assert before.returncode == 0, before.stderr
    assert "no catalog there yet" in before.stdout
    assert not (out / "catalog.db").exists()
    sync(config(sims[0].base_url, out, PROJECTS[:1], format="iceberg"))
    after = cli(*base, str(out), "--format", "iceberg", env=_env(), timeout=60)
    assert after.returncode == 0, after.stderr
    snapshot = _table(out).current_snapshot().snapshot_id
    assert f"table hss.image_local_info at {_table(out).location()}, snapshot {snapshot}" in (
        after.stdout
    )
    other = cli(*base, str(out), "--format", "iceberg", "--scan-status", "success", env=_env())
    assert other.returncode == 2
    assert "holds the inventory of another query" in other.stdout


def test_a_field_the_connector_adds_is_schema_evolution_not_a_rewrite(
    sims: list[Any], tmp_path: Path
) -> None:
    """A table written by a connector without ``non_scan_reason`` (made here by hand, with
    that field's id free): the next run adds the field with a new id and rewrites nothing;
    the earlier snapshot still reads, the field null."""
    from pyiceberg.schema import Schema

    from connector.lake.iceberg import _partition_spec

    out = tmp_path / "table"
    out.mkdir()
    older = Schema(*(f for f in iceberg_schema().fields if f.name != "non_scan_reason"))
    catalog = SqlCatalog("hss", **embedded_properties(str(out)))
    catalog.create_namespace("hss")
    table = catalog.create_table(
        "hss.image_local_info",
        schema=older,
        partition_spec=_partition_spec(older),
        properties={"hss.query": '{"enterprise_project_id":"all_granted_eps"}'},
    )
    table.append(table.scan().to_arrow().schema.empty_table())  # a snapshot of the older schema
    before = {f.name: f.field_id for f in table.schema().fields}
    report = sync(config(sims[0].base_url, out, PROJECTS[:1], format="iceberg"))
    assert report.status == "success"
    table = _table(out)
    ids = {f.name: f.field_id for f in table.schema().fields}
    assert ids["non_scan_reason"] == max(before.values()) + 1  # the next free id
    assert {name: ids[name] for name in before} == before  # the others kept theirs
    assert len(table.schemas()) == 2
    assert _keys(_rows(table)) == _keys(
        [
            {**served(r), "project_id": PROJECTS[0], "snapshot_date": TODAY}
            for r in sims[0].inventory.records(PROJECTS[0], **EVERY_EP)
        ]
    )


def test_skip_published_resumes_from_the_tables_snapshots(cli: Cli, tmp_path: Path) -> None:
    """A retry with --skip-published reads only the project the failed try did not commit;
    what the table holds tells which (its snapshots' hss.projects and hss.query)."""
    healthy, broken = PROJECTS
    out = tmp_path / "table"

    async def refuse(request: Request) -> Any:
        if request.project_id == broken:
            return error(403, "HSS.0013", "Insufficient permissions to access the resource.")
        return None

    inventory = {healthy: records("h", 30), broken: records("b", 20)}
    with tiny_server(inventory, refuse) as server:
        assert cli(*_args(server.base_url, out, healthy, broken), env=_env()).returncode == 4
    report = tmp_path / "report.json"
    with tiny_server(inventory) as server:
        args = [*_args(server.base_url, out, healthy, broken), "--skip-published"]
        result = cli(*args, "--report", str(report), env=_env())
        asked = {project for project, _ in server.requests}
    assert result.returncode == 0, result.stderr
    projects = json.loads(report.read_text())["projects"]
    assert projects[healthy]["status"] == "skipped"
    assert projects[healthy]["records_in_place"] == 30
    assert projects[broken]["status"] == "published"
    assert asked == {broken}  # the committed project was not asked for
    table = _table(out)
    assert len(table.snapshots()) == 2
    assert Counter(r["project_id"] for r in _rows(table)) == {healthy: 30, broken: 20}
