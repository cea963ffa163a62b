"""``day_extra``: what the day's one asset event says, from the run reports of its syncs."""

from __future__ import annotations

from typing import Any

from connector.airflow.events import day_extra


def _report(run_id: str, **projects: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "snapshot_date": "2026-12-08", "projects": projects}


def _project(status: str, rows: int = 0, **more: Any) -> dict[str, Any]:
    files = [f"/lake/x/{rows}/data.parquet"] if status in ("published", "skipped") else []
    return {"status": status, "records_written": rows, "files": files, **more}


def test_the_day_of_two_connections_one_project_failed() -> None:
    extra = day_extra(
        [
            _report("run-a", **{"0123": _project("published", 10), "42": _project("failed")}),
            _report("run-b", p3=_project("published", 5)),
        ]
    )
    assert extra == {
        "snapshot_date": "2026-12-08",
        "projects_published": ["0123", "p3"],
        "projects_failed": ["42"],
        "rows": 15,
        "files": 2,
        "run_ids": ["run-a", "run-b"],
    }


def test_a_resumed_retry_counts_the_snapshots_left_in_place() -> None:
    skipped = _project("skipped", published_by="run-1", records_in_place=7)
    extra = day_extra([_report("run-2", a=skipped, b=_project("published", 3))])
    assert extra["projects_published"] == ["a", "b"]
    assert extra["rows"] == 10  # the 7 in place and the 3 written
    assert extra["files"] == 2
    assert extra["run_ids"] == ["run-1", "run-2"]  # the runs whose snapshots make the day


def test_a_project_failed_in_one_report_and_published_in_another_is_published() -> None:
    extra = day_extra(
        [
            _report("run-1", a=_project("failed")),
            _report("run-2", a=_project("published", 4)),
        ]
    )
    assert (extra["projects_published"], extra["projects_failed"]) == (["a"], [])
    assert extra["run_ids"] == ["run-2"]


def test_a_superseded_project_is_in_place_and_nothing_is_a_day_of_nothing() -> None:
    extra = day_extra([_report("run-1", a=_project("superseded", 4, superseded_by="run-0"))])
    assert extra["projects_published"] == ["a"]
    assert extra["files"] == 0  # the newer run's file, not this run's
    assert extra["run_ids"] == ["run-0"]
    assert day_extra([]) == {
        "snapshot_date": None,
        "projects_published": [],
        "projects_failed": [],
        "rows": 0,
        "files": 0,
        "run_ids": [],
    }
