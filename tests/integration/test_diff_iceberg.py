"""``hss-images diff`` of the Iceberg table (``--format iceberg``): the same two simulator days
synced over real sockets into a table and into a folder lake diff to the same rows, which are
the simulator's own record; the edges name the table's dates, its commits' queries, a named
catalog and the quarantine beside LAKE."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pytest

import connector
from connector.airflow.events import day_changes
from connector.errors import ConfigError
from connector.shape.schema import file_schema
from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli
from tests.snapshots import day_record

from .helpers import EVERY_EP, config, sync
from .test_diff import KEY, PROJECTS, SIMULATOR, TODAY, YESTERDAY, _fields

pytest.importorskip("pyiceberg.catalog.sql")

from pyiceberg.catalog.sql import SqlCatalog

from connector.lake.iceberg import _arrow_schema, _partition_spec, embedded_properties
from connector.lake.iceberg import iceberg_schema as table_schema


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Day 0 of the simulator synced as yesterday, day 1 as today, each day into a folder lake
    and into an Iceberg table from the same simulator; the simulator's record of day 1."""
    root = tmp_path_factory.mktemp("diff-iceberg")
    folder, table = root / "folder", root / "table"
    record: dict[str, Any] = {}
    for day, snapshot_date in ((0, YESTERDAY), (1, TODAY)):
        with simulator_in_thread(SimulatorConfig(**{**_fields(SIMULATOR), "day": day})) as sim:
            for out, fmt in ((folder, "parquet"), (table, "iceberg")):
                cfg = config(sim.base_url, out, PROJECTS, snapshot_date=snapshot_date, format=fmt)
                report = sync(cfg)
                assert report.status == "success", report.summary()
            if day == 1:
                record.update(day_record(sim, PROJECTS))
                assert all(sim.inventory.distinct_records(p, **EVERY_EP) for p in PROJECTS)
    return {"folder": folder, "table": table, "record": record}


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_the_tables_diff_is_the_folders_row_by_row_and_the_simulators_record(
    two_days: dict[str, Any],
) -> None:
    assert (two_days["table"] / "catalog.db").is_file()
    assert not list(two_days["table"].glob("project_id=*"))  # no folder lake in there
    of_table = connector.diff(str(two_days["table"]))
    of_folder = connector.diff(str(two_days["folder"]))
    rows, expected = _frame(of_table.table()), _frame(of_folder.table())
    assert rows.schema == expected.schema
    assert rows.equals(expected)
    assert rows.height > 100
    assert [(p.project_id, p.from_date, p.to_date) for p in of_table.pairs] == [
        (p, YESTERDAY, TODAY) for p in PROJECTS
    ]
    assert "hss.image_local_info (snapshot " in of_table.pairs[0].from_file
    assert not of_table.one_sided and not of_table.quarantine
    for project in PROJECTS:
        mine = rows.filter(pl.col("project_id") == project)
        by_change = {
            change: {
                tuple(r[k] for k in KEY)
                for r in mine.iter_rows(named=True)
                if r["change"] == change
            }
            for change in ("appeared", "removed", "changed")
        }
        record = two_days["record"][project]
        assert by_change["appeared"] == record["appeared"]
        assert by_change["removed"] == record["removed"]
        assert by_change["changed"] == record["rescanned"]
    assert of_table.counts() == of_folder.counts()
    # the day's Airflow event: the same counts from the table
    extra = {"snapshot_date": TODAY.isoformat(), "projects_published": list(PROJECTS)}
    assert day_changes(str(two_days["table"]), extra) == of_folder.counts()


def test_the_cli_reads_the_table(two_days: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    table, folder = str(two_days["table"]), str(two_days["folder"])
    shown = cli("diff", table)
    assert shown.returncode == 0, shown.stderr
    expected = cli("diff", folder)
    assert shown.stdout == expected.stdout.replace(folder, table)
    target = tmp_path / "changes.parquet"
    written = cli("diff", table, "--project-id", PROJECTS[1], "--output", str(target))
    assert written.returncode == 0, written.stderr
    assert set(pl.read_parquet(target)["project_id"]) == {PROJECTS[1]}
    shown = cli("diff", table, "--from", "2000-01-01")
    assert shown.returncode == 2
    assert (
        f"ConfigError: lake {table}: no project has a snapshot on 2000-01-01 (the date to "
        f"compare from); the Iceberg table hss.image_local_info's snapshot dates are "
        f"{YESTERDAY}, {TODAY}"
    ) in shown.stderr
    shown = cli("diff", table, "--table", "hss.other")
    assert shown.returncode == 2
    assert "catalog 'hss' has no table hss.other" in shown.stderr
    shown = cli("diff", folder, "--table", "hss.image_local_info")
    assert shown.returncode == 2
    assert f"no Iceberg catalog at {folder}/catalog.db" in shown.stderr


# -- the edges, on tables written directly ---------------------------------------------------

D1, D2, D3 = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)
IMAGE = {"image_id": "img-1", "host_id": "h1", "vul_num": 1}
QUERY = '{"enterprise_project_id":"all_granted_eps"}'


def _open(catalog: Any, identifier: str = "hss.image_local_info") -> Any:
    schema = table_schema()
    catalog.create_namespace_if_not_exists(identifier.split(".")[0])
    return catalog.create_table_if_not_exists(
        identifier,
        schema=schema,
        partition_spec=_partition_spec(schema),
        properties={"format-version": "2", "hss.query": QUERY},
    )


def _commit(
    table: Any,
    day: date,
    projects: dict[str, list[dict[str, Any]]],
    *,
    query: str = QUERY,
    own: dict[str, str] | None = None,
) -> None:
    """One commit as the connector's: the rows of ``projects`` on ``day``, the summary."""
    names = [f.name for f in file_schema()]
    rows = []
    for project, records in projects.items():
        for record in records:
            row = {name: record.get(name) for name in names}
            row.update(run_id="run-test", ingested_at=datetime.now(UTC))
            rows.append({**row, "project_id": project, "snapshot_date": day})
    properties = {
        "hss.run-id": "run-test",
        "hss.run-started-at": datetime.now(UTC).isoformat(),
        "hss.query": query,
        "hss.snapshot-date": day.isoformat(),
        "hss.projects": orjson.dumps(sorted(projects)).decode(),
    }
    if own:
        properties["hss.project-queries"] = orjson.dumps(own).decode()
    data = pa.Table.from_pylist(rows, schema=_arrow_schema(table))
    table.append(data, snapshot_properties=properties)


def _embedded(out: Path) -> Any:
    out.mkdir(parents=True, exist_ok=True)
    return _open(SqlCatalog("hss", **embedded_properties(str(out))))


def test_a_project_on_one_side_and_an_empty_partition(tmp_path: Path, cli: Cli) -> None:
    table = _embedded(tmp_path)
    _commit(table, D1, {"p1": [IMAGE], "gone": [IMAGE], "empty": [IMAGE]})
    _commit(table, D2, {"p1": [{**IMAGE, "vul_num": 4}], "new": [IMAGE], "empty": []})
    result = connector.diff(str(tmp_path), from_date=D1, to_date=D2)
    assert [p.project_id for p in result.pairs] == ["empty", "p1"]
    rows = result.table().to_pylist()
    assert [(r["project_id"], r["change"], r["changed_fields"]) for r in rows] == [
        ("empty", "removed", []),  # a project that read zero records: its partition is empty
        ("p1", "changed", ["vul_num"]),
    ]
    shown = cli("diff", str(tmp_path), "--from", str(D1), "--to", str(D2))
    assert shown.returncode == 0, shown.stderr
    assert f"project new: not compared, only in {D2} (no earlier snapshot" in shown.stdout
    assert f"project gone: not compared, only in {D1} (no snapshot to compare it with)" in (
        shown.stdout
    )


def test_partitions_of_different_queries_are_refused(tmp_path: Path, cli: Cli) -> None:
    """Told by the commit that last wrote each partition: a project with a query of its own
    (``[[projects]]`` filters) on one day and not on the other."""
    table = _embedded(tmp_path)
    _commit(table, D1, {"p1": [IMAGE], "p2": [IMAGE]})
    _commit(table, D2, {"p1": [IMAGE], "p2": [IMAGE]}, own={"p1": '{"has_vul":true}'})
    shown = cli("diff", str(tmp_path), "--project-id", "p2")
    assert shown.returncode == 0, shown.stderr
    shown = cli("diff", str(tmp_path))
    assert shown.returncode == 2
    assert (
        f'project p1: the snapshot of {D1} is the inventory of enterprise_project_id="all_granted_eps", '
        f"the one of {D2} of has_vul=true (as the commits that wrote them recorded them in the "
        "table hss.image_local_info)"
    ) in shown.stderr
    with pytest.raises(ConfigError, match="the inventory of"):
        connector.diff(str(tmp_path), project_ids=["p1"])
    # the partition written again by a run of the table's query: the last commit tells
    _commit(table, D2, {"p1": []})
    assert [p.project_id for p in connector.diff(str(tmp_path)).pairs] == ["p1", "p2"]


def test_the_quarantine_beside_the_lake_is_named(tmp_path: Path) -> None:
    lake = tmp_path / "hss_images"
    table = _embedded(lake)
    _commit(table, D1, {"p1": [IMAGE]})
    _commit(table, D3, {"p1": [IMAGE]})
    quarantine = (
        tmp_path / "hss_images.connector" / "quarantine" / "project_id=p1" / f"snapshot_date={D1}"
    )
    quarantine.mkdir(parents=True)
    (quarantine / "quarantine.jsonl").write_bytes(b'{"reason": "x", "record": {}}\n')
    result = connector.diff(str(lake))
    assert result.counts()["quarantined"] == {f"p1/{D1}": 1}
    assert f"{D1} -> {D3}: 0 appeared, 0 removed, 0 changed" in result.summary()


def test_a_named_catalog_and_table(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--catalog``/``--table`` as the sync takes them, configured as pyiceberg users do
    (``PYICEBERG_CATALOG__LAKE__...``); LAKE still holds the quarantine, not the catalog."""
    import pyiceberg.catalog
    from pyiceberg.utils.config import Config as PyicebergConfig

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    monkeypatch.setenv("PYICEBERG_CATALOG__LAKE__TYPE", "sql")
    monkeypatch.setenv("PYICEBERG_CATALOG__LAKE__URI", f"sqlite:///{tmp_path / 'lake.db'}")
    monkeypatch.setenv("PYICEBERG_CATALOG__LAKE__WAREHOUSE", warehouse.as_uri())
    monkeypatch.setattr(pyiceberg.catalog, "_ENV_CONFIG", PyicebergConfig())  # read at import
    out = tmp_path / "out"
    days = [replace(SIMULATOR, project_records={PROJECTS[0]: 200}, day=d) for d in (0, 1)]
    for sim_config, snapshot_date in zip(days, (YESTERDAY, TODAY), strict=True):
        with simulator_in_thread(sim_config) as sim:
            cfg = config(sim.base_url, out, PROJECTS[:1], snapshot_date=snapshot_date)
            report = sync(replace(cfg, format="iceberg", catalog="lake", table="sec.images"))
            assert report.status == "success", report.summary()
    assert not (out / "catalog.db").exists()
    result = connector.diff(str(out), catalog="lake", table="sec.images")
    assert [(p.from_date, p.to_date) for p in result.pairs] == [(YESTERDAY, TODAY)]
    assert result.table().num_rows > 0
    extra = {"snapshot_date": TODAY.isoformat(), "projects_published": [PROJECTS[0]]}
    assert day_changes(str(out), extra, catalog="lake", table="sec.images") == result.counts()
    shown = cli("diff", str(out), "--catalog", "lake", "--table", "sec.images")
    assert shown.returncode == 0, shown.stderr
    assert f"project {PROJECTS[0]}, {YESTERDAY} -> {TODAY}:" in shown.stdout
    shown = cli("diff", str(out), "--catalog", "nowhere")
    assert shown.returncode == 2
    assert "cannot load the Iceberg catalog 'nowhere'" in shown.stderr
