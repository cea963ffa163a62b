"""Daily snapshot of the HSS local image list into the lake: one mapped task per project.

    list_projects  ->  sync_project[project 1 .. n]  ->  summarise

Set up (Airflow 3, with ``pip install 'hss-image-connector[airflow]'`` on the workers):

- Connection ``hss_default`` (type ``hss``, "Huawei Cloud HSS" in the form; its Test button
  reads one page): password = an IAM token, or ``auth: aksk``
  with login = access key and password = secret key; extras ``region`` (or ``endpoint``)
  and ``project_ids`` (a list, or ``all``: every enabled project of the region, listed
  through IAM when the run starts); optionally ``enterprise_project_id`` (default ``all_granted_eps``,
  every enterprise project the credentials may see). As an environment variable::

      AIRFLOW_CONN_HSS_DEFAULT='{"conn_type": "hss", "password": "...",
          "extra": {"region": "cn-north-4", "project_ids": ["0a1b...", "9f8e..."]}}'

- Variable ``hss_images_lake_path``: where the Parquet goes (a folder or
  ``s3://bucket/prefix``; default ``/data/lake/hss_images``).
- Variable ``hss_images_conn_id`` (optional): another connection id.

Each project lands in ``<lake>/project_id=<id>/snapshot_date=<date>/``, the UTC date the
task read the inventory on (the API has no history, so that is the only honest label). A
retry on the same day replaces that day's partition. A run standing for a day before
yesterday (a backfill, a cleared old run, or a catch-up run if ``catchup`` were on) skips
its sync tasks with a message instead of writing today's inventory under a day that is over.
The gateway throttles per credential: the mapped tasks of a run share the connection's
credential, so at most ``MAX_PARALLEL_PROJECTS`` run at once, each at ``RATE_PER_TASK``.

With ``pip install 'hss-image-connector[openlineage]'`` and an OpenLineage transport
configured, each sync task also reports its lineage: the project's API resource read, the
lake written (schema, rows, bytes) and the quarantined records (README, Lineage).

Try it without a scheduler: ``python examples/hss_images_dag.py [YYYY-MM-DD]``.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, dag, task

from connector.airflow import HssHook, HssImageSyncOperator

CONN_ID = "{{ var.value.get('hss_images_conn_id', 'hss_default') }}"
LAKE_PATH = "{{ var.value.get('hss_images_lake_path', '/data/lake/hss_images') }}"
HSS_IMAGES_LAKE = Asset(name="hss_images_lake")
"""The lake as an Airflow Asset: every successful sync task records an event on it, so a
DAG with ``schedule=[HSS_IMAGES_LAKE]`` runs on fresh data. (With a fixed ``out``, the
operator declares ``lake_asset(out)``, the folder's ``file://`` or ``s3://`` URI, itself;
this lake's path is a Variable, read only when the task runs.)"""
MAX_PARALLEL_PROJECTS = 2
RATE_PER_TASK = 5.0
"""Requests per second of one task; MAX_PARALLEL_PROJECTS * RATE_PER_TASK stays within the
gateway's per-user limit."""


@dag(
    dag_id="hss_images",
    description="Snapshot the HSS local image list of every project into the lake",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # past days cannot be read: their runs would only skip
    max_active_runs=1,
    default_args={
        "owner": "security-data",
        "retries": 3,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
    },
    tags=["hss", "security", "lake"],
)
def hss_images() -> None:
    @task(retries=1)
    def list_projects(conn_id: str) -> list[str]:
        """The projects to read: the connection's ``project_ids`` extra (``all``: the
        region's projects, listed through IAM)."""
        return HssHook(conn_id).project_ids()

    reports = HssImageSyncOperator.partial(
        task_id="sync_project",
        hss_conn_id=CONN_ID,
        out=LAKE_PATH,
        rate=RATE_PER_TASK,
        max_quarantined="1%",
        outlets=[HSS_IMAGES_LAKE],
        max_active_tis_per_dagrun=MAX_PARALLEL_PROJECTS,
        map_index_template="{{ task.project_ids }}",
    ).expand(project_ids=list_projects(CONN_ID))

    @task
    def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
        """One line per run for the log and for whoever reads this XCom (metrics, alerts)."""
        reports = reports[:]  # every mapped task's report in one request
        summary = {
            "snapshot_date": reports[0]["snapshot_date"] if reports else None,
            "projects": len(reports),
            "records_written": sum(r["records_written"] for r in reports),
            "records_quarantined": sum(r["records_quarantined"] for r in reports),
            "drift_detected": any(r["drift_detected"] for r in reports),
            "schema_drift": any(r["schema_drift"] for r in reports),
            "files": [f for r in reports for f in r["files"]],
        }
        print(f"hss_images summary: {summary}")
        return summary

    summarise(reports.output)


hss_images_dag = hss_images()

if __name__ == "__main__":
    logical = pendulum.parse(sys.argv[1]) if len(sys.argv) > 1 else pendulum.now("UTC")
    hss_images_dag.test(logical_date=logical)
