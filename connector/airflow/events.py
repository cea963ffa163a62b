"""The lake's asset event of a day: one event, once every project of the day is settled.

A DAG scheduled on the lake's Asset should run once a day, on the whole day, and know
what it holds. ``day_extra`` turns the run reports of the day's syncs (one per connection,
or one) into the event's ``extra``:

    {"snapshot_date": "2026-12-08",
     "projects_published": [...], "projects_failed": [...],
     "rows": 1234, "files": 3, "run_ids": [...]}

``day_changes`` adds what changed since each project's previous snapshot
(``connector.diff``): ``{"appeared": n, "removed": n, "changed": n}`` in all and per
project, the projects with no earlier snapshot, and the quarantine of either day.

A project is published when this day's partition holds its snapshot: published by one of
these runs, kept from a newer run (``superseded``), or left in place by a run that resumed
(``skipped``, ``skip_published``: its rows are the snapshot's in place, its run among
``run_ids``). It failed when no report of the day published it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from connector.errors import ConnectorError

__all__ = ["LAKE_ASSET_NAME", "day_changes", "day_extra"]

log = logging.getLogger("connector")

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


def day_changes(
    lake: str,
    extra: Mapping[str, Any],
    *,
    s3_endpoint: str | None = None,
    catalog: str | None = None,
    table: str | None = None,
) -> dict[str, Any]:
    """What changed in the day's published projects since each one's previous snapshot,
    for the event's ``extra["changes"]``: ``connector.diff(...).counts()``, its summary
    logged for a person. A diff that cannot be made (another query on the earlier day, a
    lake that cannot be read) is ``{"error": "..."}``: the day's event is recorded anyway.
    An Iceberg table is read as ``connector.diff`` reads it: ``lake`` holding its embedded
    catalog, or ``catalog``/``table`` as the sync was given them.
    """
    from connector.lake.diff import diff

    day = extra.get("snapshot_date")
    projects = list(extra.get("projects_published", ()))
    if not projects or not isinstance(day, str):
        return {"error": "no single snapshot date to compare"}
    try:
        changes = diff(
            lake,
            to_date=day,
            project_ids=projects,
            s3_endpoint=s3_endpoint,
            catalog=catalog,
            table=table,
        )
        counts = changes.counts()
        log.info("what changed since the previous snapshots:\n%s", changes.summary())
    except ConnectorError as error:
        log.warning("no diff of the day: %s: %s", type(error).__name__, error)
        return {"error": f"{type(error).__name__}: {error}"}
    return counts
