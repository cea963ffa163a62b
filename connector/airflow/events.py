"""The lake's asset event of a day: one event, once every project of the day is settled.

A DAG scheduled on the lake's Asset should run once a day, on the whole day, and know
what it holds. ``day_extra`` turns the run reports of the day's syncs (one per connection,
or one) into the event's ``extra``:

    {"snapshot_date": "2026-12-08",
     "projects_published": [...], "projects_failed": [...],
     "rows": 1234, "files": 3, "run_ids": [...]}

A project is published when this day's partition holds its snapshot: published by one of
these runs, kept from a newer run (``superseded``), or left in place by a run that resumed
(``skipped``, ``skip_published``: its rows are the snapshot's in place, its run among
``run_ids``). It failed when no report of the day published it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["LAKE_ASSET_NAME", "day_extra"]

LAKE_ASSET_NAME = "hss_images_lake"
"""The name of the lake's Asset when its path is known only when the task runs (a
templated ``out``): what the example DAG records its day's event on, and what a
downstream DAG schedules on (``schedule=[lake_asset()]``)."""

_IN_PLACE = ("published", "superseded", "skipped")


def day_extra(reports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The asset event's ``extra`` for the day's run reports (``RunReport.to_dict()``).

    A project in several reports (a retry's and the first try's) counts once: published
    if any report has its snapshot in place.
    """
    reports = list(reports)
    dates = sorted({str(r["snapshot_date"]) for r in reports})
    published: dict[str, Mapping[str, Any]] = {}
    seen: set[str] = set()
    run_ids: set[str] = set()
    for report in reports:
        for project_id, project in report.get("projects", {}).items():
            seen.add(project_id)
            if project.get("status") not in _IN_PLACE:
                continue
            in_place = project.get("published_by") or project.get("superseded_by")
            run_ids.add(str(in_place or report["run_id"]))  # whose snapshot is in place
            published.setdefault(project_id, project)
    rows = sum(
        int(p.get("records_in_place" if p.get("status") == "skipped" else "records_written", 0))
        for p in published.values()
    )
    files = sum(
        1 for p in published.values() for f in p.get("files", ()) if str(f).endswith(".parquet")
    )
    return {
        "snapshot_date": dates[0] if len(dates) == 1 else (dates or None),
        "projects_published": sorted(published),
        "projects_failed": sorted(seen - set(published)),
        "rows": rows,
        "files": files,
        "run_ids": sorted(run_ids),
    }
