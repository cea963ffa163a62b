"""The crawl over an in-memory list: exactness, drift repair, the offset ceiling."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector import QuarantineLimit
from connector.settings.config import TotalTolerance

from .listsource import Gateway, ListSource, list_config, record, sync_list

_config = list_config
_sync = sync_list


def _ids(out: Path) -> list[str]:
    rows = duckdb.sql(
        f"select image_id from read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    return [r[0] for r in rows]


@given(total=st.integers(0, 130), page_size=st.integers(10, 25), concurrency=st.integers(1, 6))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_static_list_is_read_exactly_once(
    tmp_path: Path, total: int, page_size: int, concurrency: int
) -> None:
    out = tmp_path / f"o{total}-{page_size}-{concurrency}"
    items = [record(n) for n in range(total)]
    report = _sync(_config(out, page_size=page_size, concurrency=concurrency), ListSource(items))
    assert report.status == "success", report.summary()
    assert sorted(_ids(out)) == sorted(r["image_id"] for r in items)
    project = report.projects["p1"]
    assert not project.drift_detected
    assert project.records_written == total


@given(
    seed=st.integers(0, 10_000),
    total=st.integers(20, 150),
    every=st.integers(1, 6),
    inserts=st.integers(0, 3),
    deletes=st.integers(0, 3),
    mutations=st.integers(1, 8),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_drift_keeps_every_stable_record_exactly_once(
    tmp_path: Path, seed: int, total: int, every: int, inserts: int, deletes: int, mutations: int
) -> None:
    rng = random.Random(seed)
    items = [record(n) for n in range(total)]
    ever = {r["image_id"] for r in items}
    deleted: set[str] = set()
    fresh = iter(range(10**6, 2 * 10**6))

    def mutate(current: list[dict[str, Any]], count: int) -> None:
        if count == 0 or count % every or count // every > mutations:
            return
        for _ in range(deletes):
            if len(current) > 1:
                gone = current.pop(rng.randrange(len(current)))
                deleted.add(gone["image_id"])
        for _ in range(inserts):
            new = record(next(fresh))
            ever.add(new["image_id"])
            current.insert(rng.randrange(len(current) + 1), new)

    stable = {r["image_id"] for r in items}
    out = tmp_path / f"d{seed}-{total}-{every}-{inserts}-{deletes}-{mutations}"
    # up to 8 changes, each answered by a round of re-reads that itself takes requests: more
    # rounds than the default limit may be needed before the list stands still
    report = _sync(_config(out, max_repair_rounds=40), ListSource(items, mutate))
    assert report.status == "success", report.summary()
    written = _ids(out)
    assert len(written) == len(set(written)), "a record was written twice"
    assert stable - deleted <= set(written), "a record present for the whole crawl is missing"
    assert set(written) <= ever


def test_ceiling_splits_by_update_time(tmp_path: Path) -> None:
    items = [record(n) for n in range(300)]
    config = _config(tmp_path, page_size=10, max_offset=50)
    report = _sync(config, ListSource(items))
    assert report.status == "success", report.summary()
    assert sorted(_ids(tmp_path)) == sorted(r["image_id"] for r in items)
    assert report.projects["p1"].slices > 1


@pytest.mark.parametrize("count", [50, 51, 55, 56])
def test_a_list_whose_end_is_past_the_ceiling_is_split(tmp_path: Path, count: int) -> None:
    """Max offset 50: the read that proves the end of ``count`` records starts at its last
    record, offset ``count - 1``; beyond the ceiling (51 records still end within it) the
    query is split by time like a longer one (55 records used to fill the last reachable
    page and fail loudly)."""
    items = [record(n) for n in range(count)]
    config = _config(tmp_path, page_size=10, max_offset=50)
    report = _sync(config, ListSource(items))
    assert report.status == "success", report.summary()
    assert sorted(_ids(tmp_path)) == sorted(r["image_id"] for r in items)
    assert (report.projects["p1"].slices > 1) == (count - 1 > 50)


def test_rerun_replaces_the_partition(tmp_path: Path) -> None:
    items = [record(n) for n in range(55)]
    config = _config(tmp_path)
    _sync(config, ListSource(items))
    _sync(replace(config, run_id="second-run"), ListSource(items[:30]))
    assert len(_ids(tmp_path)) == 30


def test_insecure_http_opt_in_is_warned_about(tmp_path: Path, caplog: Any) -> None:
    config = replace(
        _config(tmp_path), endpoint="http://hss.example.internal", allow_insecure_http=True
    )
    with caplog.at_level("WARNING", logger="connector"):
        report = _sync(config, ListSource([record(n) for n in range(5)]))
    assert report.status == "success"
    assert "unencrypted" in caplog.text


def test_records_that_are_not_objects_are_quarantined_not_lost(tmp_path: Path) -> None:
    items: list[Any] = [record(n) for n in range(30)]
    items[3], items[17], items[25] = "garbage", 42, None
    config = replace(_config(tmp_path), max_quarantined=QuarantineLimit.parse("50%"))
    report = _sync(config, ListSource(items))  # type: ignore[arg-type]
    project = report.projects["p1"]
    assert report.status == "success", report.summary()
    assert (project.records_written, project.records_quarantined) == (27, 3)
    lines = [
        orjson.loads(line)
        for path in Path(f"{tmp_path}.connector").glob("quarantine/**/*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    assert sorted(map(repr, (e["record"] for e in lines))) == sorted(
        map(repr, ["garbage", 42, None])
    )
    assert {e["offset"] for e in lines} == {3, 17, 25}
    assert all("not a JSON object" in e["reason"] for e in lines)


@pytest.mark.parametrize("split", [False, True])
def test_a_short_first_page_whose_total_over_counts_is_not_a_page_cap(
    tmp_path: Path, split: bool
) -> None:
    """A gateway whose total_num over-counts by 7 (accepted): a query of 13 records gives a
    first page of 13 where 22 were asked, twice alike, while total_num says 20. A read from
    its last record finds nothing after it: the list ends there; it is not a cap of 13 per
    page (taken for one, every time range of a split re-planned its page size until the
    crawl failed loudly: 90 of 200 start times of this split did)."""
    items = [record(n) for n in range(13 if not split else 104)]
    fetch: dict[str, Any] = {"page_size": 22, "total_tolerance": TotalTolerance(records=7)}
    if split:
        fetch["max_offset"] = 30
    source = ListSource(items, gateway=Gateway(total_skew=7))
    report = _sync(_config(tmp_path, **fetch), source)
    assert report.status == "success", report.summary()
    assert sorted(_ids(tmp_path)) == sorted(r["image_id"] for r in items)
    project = report.projects["p1"]
    assert project.page_size == 22 and project.total_num_mismatch is not None
    assert (project.slices > 1) == split
