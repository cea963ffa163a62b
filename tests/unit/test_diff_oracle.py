"""``connector.diff`` against a plain set-based oracle (hypothesis): nulls in every key
field, one image on several hosts, fields that change or not, the run's own fields
differing on every row."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.lake.diff import WATCHED, compared_fields, diff
from connector.shape.schema import load_spec
from tests.diff_sql import manual_sql
from tests.snapshots import write_snapshot

KEY = load_spec().natural_key
COMPARED = compared_fields()
DAY_1, DAY_2 = date(2026, 12, 1), date(2026, 12, 2)

_text = st.sampled_from([None, "", "a", "b"])
keys = st.fixed_dictionaries(
    {
        "image_id": st.sampled_from([None, "img-1", "img-2"]),
        "image_digest": st.sampled_from([None, "sha256:1"]),
        "image_name": st.sampled_from([None, "nginx"]),
        "image_version": st.sampled_from([None, "1.25"]),
        "host_id": st.sampled_from([None, "host-1", "host-2", "host-3"]),  # one image, hosts
        "agent_id": st.sampled_from([None, "agent-1"]),
    }
)
values = st.fixed_dictionaries(
    {
        "scan_status": st.sampled_from([None, "success", "waiting"]),
        "vul_num": st.sampled_from([None, 0, 1, 7]),
        "severity_level": st.sampled_from([None, "Low", "High"]),
        "malicious_file_num": st.sampled_from([None, 0, 2]),
        "unsafe_setting_num": st.sampled_from([None, 0, 3]),
        "latest_scan_time": st.sampled_from(
            [None, datetime(2026, 11, 30, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)]
        ),
        "host_name": _text,
        "non_scan_reason": _text,
        "extra_fields": st.sampled_from([None, '{"new":1}']),
        "image_size": st.sampled_from([None, 2**33]),
        "run_id": st.sampled_from(["run-a", "run-b"]),
        "ingested_at": st.sampled_from(
            [datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, 3, tzinfo=UTC)]
        ),
    }
)
record = st.builds(lambda k, v: {**k, **v}, keys, values)


def _side(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A snapshot as the lake holds it: each natural key once (the writer's rule)."""
    return {tuple(r[k] for k in KEY): r for r in records}


def oracle(
    before: dict[tuple[Any, ...], dict[str, Any]], after: dict[tuple[Any, ...], dict[str, Any]]
) -> set[tuple[Any, ...]]:
    rows = set()
    for key in before.keys() | after.keys():
        a, b = before.get(key), after.get(key)
        if a is None:
            change, fields = "appeared", ()
        elif b is None:
            change, fields = "removed", ()
        else:
            fields = tuple(f for f in COMPARED if a.get(f) != b.get(f))
            if not fields:
                continue
            change = "changed"
        watched = tuple((side or {}).get(f) for f in WATCHED for side in (a, b))
        rows.add(("p1", change, key, fields, watched))
    return rows


def _rows(frame: pl.DataFrame) -> set[tuple[Any, ...]]:
    found = set()
    for row in frame.iter_rows(named=True):
        assert (row["from_date"], row["to_date"]) == (DAY_1, DAY_2)
        key = tuple(row[k] for k in KEY)
        watched = tuple(row[f"{f}_{s}"] for f in WATCHED for s in ("from", "to"))
        found.add((row["project_id"], row["change"], key, tuple(row["changed_fields"]), watched))
    return found


@settings(max_examples=60, deadline=None)
@given(st.lists(record, max_size=12), st.lists(record, max_size=12), st.data())
def test_the_diff_is_the_oracles(
    first: list[dict[str, Any]], second: list[dict[str, Any]], data: st.DataObject
) -> None:
    before, after = _side(first), _side(second)
    # some records of the first day again on the second, changed or not
    for key, kept in before.items():
        if data.draw(st.booleans()):
            after.setdefault(key, {**kept, **data.draw(st.sampled_from([{}, {"vul_num": 99}]))})
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        write_snapshot(lake, "p1", DAY_1, list(before.values()))
        write_snapshot(lake, "p1", DAY_2, list(after.values()))
        result = diff(str(lake))
        got = pl.from_arrow(result.table())
        assert isinstance(got, pl.DataFrame)
        want = oracle(before, after)
        assert _rows(got) == want
        assert got.height == len(want)  # no row twice
        counts = result.counts()["total"]
        for change in ("appeared", "removed", "changed"):
            assert counts[change] == sum(1 for row in want if row[1] == change)
        if not before or not after:
            return  # an empty snapshot has no row to name its project in SQL (docs/changes.md)
        # the manual's DuckDB query gives the same rows
        same = duckdb.sql(manual_sql(str(lake), DAY_1, DAY_2)).pl()
        assert _rows(same.cast({c: got.schema[c] for c in got.columns})) == want


def test_change_counts_of_any_frame_or_table_is_json_as_it_is() -> None:
    import orjson
    import pyarrow as pa

    from connector.lake.diff import change_counts

    rows = pa.table(
        {
            "project_id": ["p1", "p1", "p2", "p1"],
            "change": ["appeared", "changed", "removed", "changed"],
        }
    )
    counted = change_counts(rows)
    assert counted == {
        "total": {"appeared": 1, "removed": 1, "changed": 2},
        "projects": {
            "p1": {"appeared": 1, "removed": 0, "changed": 2},
            "p2": {"appeared": 0, "removed": 1, "changed": 0},
        },
    }
    assert orjson.loads(orjson.dumps(counted)) == counted
    assert change_counts(pl.from_arrow(rows).lazy()) == counted  # type: ignore[union-attr]
    empty = change_counts(rows.slice(0, 0))
    assert empty == {"total": {"appeared": 0, "removed": 0, "changed": 0}, "projects": {}}
