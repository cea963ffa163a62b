"""The pipeline's publish step into an Iceberg table, and what the run report says of it.

``stage`` runs in a project's worker thread where the folder lake would publish: the
project's staged rows become the table's data files, not yet visible. Once every project has
ended the pipeline commits them all at once (``connector.lake.iceberg.Table.commit``) and
``committed`` (or ``failed``) tells each project's report what happened.
"""

from __future__ import annotations

import logging

from connector.job.logs import error_fields
from connector.job.report import ProjectReport, RunReport
from connector.lake.iceberg import Committed, Table
from connector.lake.writer import ProjectWriter, Staged

__all__ = ["committed", "failed", "stage"]

log = logging.getLogger("connector")


def stage(table: Table, writer: ProjectWriter, staged: Staged, result: ProjectReport) -> None:
    """Write a finished project's rows as data files of the table (its worker thread)."""
    assert writer.stamp.query is not None
    table.stage(
        writer.project_id, writer.staged_data, writer.stamp.query, writer.publish_quarantine
    )
    result.records_written = staged.rows
    result.duplicates_removed = staged.duplicates_removed


def committed(table: Table, done: Committed, report: RunReport) -> None:
    """Each project of the commit published (or superseded by a run that started later)."""
    for project_id, files in done.files.items():
        result = report.projects[project_id]
        result.status, result.files = "published", list(files)
        log.info(
            "project %s: %d records committed to the Iceberg table %s (snapshot %s)",
            project_id,
            result.records_written,
            table.name,
            done.snapshot_id,
            extra={"records": result.records_written},
        )
    for project_id, run_id in done.superseded.items():
        result = report.projects[project_id]
        result.status, result.superseded_by = "superseded", run_id


def failed(
    table: Table, report: RunReport, error: BaseException, message: str, exit_code: int
) -> None:
    """The commit failed: none of its projects is published; their previous data stays."""
    for project_id in table.staged_projects():
        result = report.projects[project_id]
        result.error, result.error_type, result.exit_code = message, type(error).__name__, exit_code
        log.error(
            "project %s failed: %s: %s",
            project_id,
            result.error_type,
            message,
            extra=error_fields(error),
        )
