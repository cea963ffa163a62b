"""``hss-images diff`` and ``connector.diff``: two days of the simulator synced over real
sockets, compared row by row with the simulator's own record of both days; each edge with
its message."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pytest

import connector
from connector.lake.diff import WATCHED, compared_fields
from connector.shape.schema import load_spec
from connector.simulator import SimulatorConfig, natural_key, simulator_in_thread
from tests.commands import Cli
from tests.diff_sql import manual_sql
from tests.snapshots import day_record, write_snapshot

from .helpers import EVERY_EP, TOKEN, config, sync

KEY = load_spec().natural_key
PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")
TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)
SIMULATOR = SimulatorConfig(
    seed=25,
    project_records={PROJECTS[0]: 2_400, PROJECTS[1]: 700},
    shared_image_rate=0.3,  # one image on several hosts: image_id alone is not a key
    tokens=frozenset({TOKEN}),
    daily_appear_rate=0.04,
    daily_remove_rate=0.03,
    daily_rescan_rate=0.08,
)


def _by_key(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {natural_key(r): r for r in records}


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Day 0 of the simulator synced as yesterday, day 1 as today; what each served."""
    out = tmp_path_factory.mktemp("lake") / "hss_images"
    served: dict[int, dict[str, dict[tuple[Any, ...], dict[str, Any]]]] = {}
    record: dict[str, Any] = {}
    for day, snapshot_date in ((0, YESTERDAY), (1, TODAY)):
        simulator = SimulatorConfig(**{**_fields(SIMULATOR), "day": day})
        with simulator_in_thread(simulator) as sim:
            report = sync(config(sim.base_url, out, PROJECTS, snapshot_date=snapshot_date))
            assert report.status == "success", report.summary()
            served[day] = {
                p: _by_key(sim.inventory.distinct_records(p, **EVERY_EP)) for p in PROJECTS
            }
            if day == 1:
                record.update(day_record(sim, PROJECTS))
    return {"out": out, "served": served, "record": record}


def _fields(config: SimulatorConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def _as_served(value: Any) -> Any:
    """A value read back as the API sent it (times as epoch milliseconds)."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return value


def test_two_days_over_sockets_are_the_simulators_record_row_by_row(
    two_days: dict[str, Any],
) -> None:
    result = connector.diff(str(two_days["out"]))
    rows = pl.from_arrow(result.table())
    assert isinstance(rows, pl.DataFrame)
    assert [(p.project_id, p.from_date, p.to_date) for p in result.pairs] == [
        (p, YESTERDAY, TODAY) for p in PROJECTS
    ]
    assert not result.one_sided and not result.quarantine
    compared = compared_fields()
    for project in PROJECTS:
        before, after = two_days["served"][0][project], two_days["served"][1][project]
        mine = rows.filter(pl.col("project_id") == project)
        found = {tuple(r[k] for k in KEY): r for r in mine.iter_rows(named=True)}
        assert len(found) == mine.height  # each record once
        by_change = {
            change: {k for k, r in found.items() if r["change"] == change}
            for change in ("appeared", "removed", "changed")
        }
        # the simulator's own record of the day (limited to what it serves: every key is)
        record = two_days["record"][project]
        assert by_change["appeared"] == record["appeared"] == after.keys() - before.keys()
        assert by_change["removed"] == record["removed"] == before.keys() - after.keys()
        assert by_change["changed"] == record["rescanned"]
        assert record["appeared"] and record["removed"] and record["rescanned"]
        # row by row: the fields that differ, both sides of the watched ones
        for key, row in found.items():
            a, b = before.get(key, {}), after.get(key, {})
            differing = [f for f in compared if f != "extra_fields" and a.get(f) != b.get(f)]
            assert row["changed_fields"] == (differing if row["change"] == "changed" else [])
            for name in WATCHED:
                assert _as_served(row[f"{name}_from"]) == a.get(name), (key, name)
                assert _as_served(row[f"{name}_to"]) == b.get(name), (key, name)
    # images on several hosts took part
    image_ids = rows.group_by("project_id", "image_id").len()
    assert image_ids["len"].max() > 1 or any(
        len({k[0] for k in two_days["served"][1][p]}) < len(two_days["served"][1][p])
        for p in PROJECTS
    )
    counts = result.counts()
    assert min(counts["total"].values()) > 20
    assert counts["total"] == {
        change: rows.filter(pl.col("change") == change).height
        for change in ("appeared", "removed", "changed")
    }
    assert orjson.loads(orjson.dumps(counts)) == counts  # JSON-able, as it is


def test_the_manuals_duckdb_query_gives_the_same_rows(two_days: dict[str, Any]) -> None:
    out = str(two_days["out"])
    ours = pl.from_arrow(connector.diff(out).table())
    assert isinstance(ours, pl.DataFrame)
    theirs = duckdb.sql(manual_sql(out, YESTERDAY, TODAY)).pl()
    theirs = theirs.cast({c: ours.schema[c] for c in ours.columns})
    assert theirs.columns == ours.columns
    assert theirs.equals(ours)


def test_the_cli_summary_and_output(two_days: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    out = str(two_days["out"])
    shown = cli("diff", out)
    assert shown.returncode == 0, shown.stderr
    assert f"project {PROJECTS[0]}, {YESTERDAY} -> {TODAY}:" in shown.stdout
    assert "largest rises in vulnerabilities:" in shown.stdout
    assert "total:" in shown.stdout
    target = tmp_path / "changes.parquet"
    written = cli("diff", out, "--project-id", PROJECTS[1], "--output", str(target))
    assert written.returncode == 0, written.stderr
    rows = pl.read_parquet(target)
    assert set(rows["project_id"]) == {PROJECTS[1]}
    assert f"{rows.height:,} rows written to {target}" in written.stderr
    assert not list(tmp_path.glob("*.partial"))


# -- the edges ---------------------------------------------------------------------------

D1, D2, D3 = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)
IMAGE = {"image_id": "img-1", "host_id": "h1", "vul_num": 1}


def test_a_project_on_one_side_only_is_reported_as_such(tmp_path: Path, cli: Cli) -> None:
    write_snapshot(tmp_path, "p1", D1, [IMAGE])
    write_snapshot(tmp_path, "p1", D2, [{**IMAGE, "vul_num": 4}])
    write_snapshot(tmp_path, "new", D2, [IMAGE] * 1)
    write_snapshot(tmp_path, "gone", D1, [IMAGE])
    result = connector.diff(str(tmp_path), from_date=D1, to_date=D2)
    assert [p.project_id for p in result.pairs] == ["p1"]
    assert set(result.table()["project_id"].to_pylist()) == {"p1"}
    shown = cli("diff", str(tmp_path), "--from", str(D1), "--to", str(D2))
    assert shown.returncode == 0, shown.stderr
    assert f"project new: not compared, only in {D2} (no earlier snapshot" in shown.stdout
    assert f"project gone: not compared, only in {D1} (no snapshot to compare it with)" in (
        shown.stdout
    )
    assert result.counts()["one_sided"] == {
        "gone": {"from_date": str(D1), "to_date": None},
        "new": {"from_date": None, "to_date": str(D2)},
    }


def test_a_date_without_a_snapshot_lists_the_dates_there_are(tmp_path: Path, cli: Cli) -> None:
    write_snapshot(tmp_path, "p1", D1, [IMAGE])
    write_snapshot(tmp_path, "p1", D3, [IMAGE])
    shown = cli("diff", str(tmp_path), "--from", str(D2))
    assert shown.returncode == 2
    assert (
        f"ConfigError: lake {tmp_path}: no project has a snapshot on {D2} (the date to compare "
        f"from); the lake's snapshot dates are {D1}, {D3}"
    ) in shown.stderr
    shown = cli("diff", str(tmp_path), "--project-id", "p9")
    assert shown.returncode == 2
    assert f"lake {tmp_path}: no snapshot of project p9; its projects are p1" in shown.stderr
    shown = cli("diff", str(tmp_path), "--from", str(D3), "--to", str(D1))
    assert shown.returncode == 2
    assert f"the date to compare from, {D3}, is not before the date to compare to, {D1}" in (
        shown.stderr
    )
    shown = cli("diff", str(tmp_path), "--to", "yesterday")
    assert shown.returncode == 2
    assert "the date to compare to: 'yesterday' is not a date (YYYY-MM-DD)" in shown.stderr
    d4 = D3 + timedelta(days=1)
    write_snapshot(tmp_path, "p2", D2, [IMAGE])  # D2 and D4 are in the lake now, not in p1
    write_snapshot(tmp_path, "p2", d4, [IMAGE])
    shown = cli("diff", str(tmp_path), "--from", str(D2), "--to", str(d4), "--project-id", "p1")
    assert shown.returncode == 2
    assert f"project p1 has no snapshot on {d4} (the date to compare to) nor on the date to " in (
        shown.stderr
    )
    assert f"its snapshot dates are {D1}, {D3}" in shown.stderr
    iceberg = tmp_path / "iceberg"
    iceberg.mkdir()
    (iceberg / "catalog.db").write_bytes(b"")
    shown = cli("diff", str(iceberg))
    assert shown.returncode == 2
    assert "catalog 'hss' has no table hss.image_local_info" in shown.stderr  # an empty catalog
    shown = cli("diff", str(tmp_path / "nothing"))
    assert shown.returncode == 2
    assert "is not a folder" in shown.stderr


def test_snapshots_of_different_queries_are_refused(tmp_path: Path, cli: Cli) -> None:
    write_snapshot(tmp_path, "p1", D1, [IMAGE], query='{"enterprise_project_id":"0"}')
    write_snapshot(tmp_path, "p1", D2, [IMAGE], query='{"has_vul":true}')
    shown = cli("diff", str(tmp_path))
    assert shown.returncode == 2
    assert (
        f'project p1: the snapshot of {D1} is the inventory of enterprise_project_id="0", '
        f"the one of {D2} of has_vul=true"
    ) in shown.stderr
    assert "Compare snapshots of one query" in shown.stderr


def test_the_quarantine_of_either_day_is_named(tmp_path: Path, cli: Cli) -> None:
    lake = tmp_path / "hss_images"
    write_snapshot(lake, "p1", D1, [IMAGE])
    write_snapshot(lake, "p1", D2, [IMAGE])
    quarantine = (
        tmp_path / "hss_images.connector" / "quarantine" / "project_id=p1" / f"snapshot_date={D2}"
    )
    quarantine.mkdir(parents=True)
    lines = [orjson.dumps({"reason": "vul_num: 1.5 is not an integer", "record": {}})] * 2
    (quarantine / "quarantine.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    shown = cli("diff", str(lake))
    assert shown.returncode == 0, shown.stderr
    assert (
        f"quarantine: 2 record(s) of project p1 on {D2} failed validation and are neither in "
        f"nor out of this diff: {quarantine / 'quarantine.jsonl'}"
    ) in shown.stdout
    assert connector.diff(str(lake)).counts()["quarantined"] == {f"p1/{D2}": 2}


def test_a_natural_key_twice_in_a_snapshot_is_refused(tmp_path: Path, cli: Cli) -> None:
    write_snapshot(tmp_path, "p1", D1, [IMAGE, {**IMAGE, "vul_num": 2}])
    write_snapshot(tmp_path, "p1", D2, [{**IMAGE, "vul_num": 3}])
    shown = cli("diff", str(tmp_path))
    assert shown.returncode == 5
    assert "DataLossError" in shown.stderr and "holds one natural key twice" in shown.stderr


def test_a_lake_with_one_snapshot_per_project_compares_nothing(tmp_path: Path) -> None:
    write_snapshot(tmp_path, "p1", D1, [IMAGE])
    result = connector.diff(str(tmp_path))
    assert result.pairs == () and result.table().num_rows == 0
    assert "not compared, only in 2026-12-01" in result.summary()
