"""Daily snapshot of the HSS local image list into the lake: one task per credential.

    connections  ->  sync[connection 1 .. n]  ->  record_day      (the lake's asset event)
                                              ->  failed_syncs    (fails the run if one did)

Why one task per credential, not per project: the gateway throttles per user. One process
syncing every project of a connection gives the whole budget to whatever is left to read:
1.03x the gateway's limit with no 429 in the benchmarks, whatever the projects' sizes. Tasks
dividing that budget exactly each keep their share to the end: with projects of 50,000,
20,000, 5,000 and 5,000 records the run took 2.52x the limit, as long as the largest
project's task at a quarter of the rate; four tasks at the default rate, together twice the
gateway's, got about 9 % of requests throttled. Different credentials (accounts, regions)
have budgets of their own, so their tasks run side by side (docs/airflow.md, One task per
credential).

Set up (Airflow 3.3, with ``pip install 'hss-image-connector[airflow]'`` on the workers, under
Airflow's constraints file: docs/airflow.md, Installing):

- One connection per credential (type ``hss``, "Huawei Cloud HSS" in the form; its Test
  button reads one page): Host = the endpoint host (``hss.cn-north-4.myhuaweicloud.com``)
  or extra ``region``; password = an IAM token, or ``auth: aksk`` with login = access key
  and password = secret key; extra ``project_ids`` (a list, or ``all``: every enabled
  project of the region, listed through IAM when the run starts). As a URI::

      AIRFLOW_CONN_HSS_DEFAULT='hss://:TOKEN@hss.cn-north-4.myhuaweicloud.com/?project_ids=all'

- Variable ``hss_images_conn_ids`` (optional, JSON): the connections to sync, e.g.
  ``["hss_account_a", "hss_account_b_eu"]``; default ``["hss_default"]``.
- Variable ``hss_images_lake_path``: where the Parquet goes (a folder or
  ``s3://bucket/prefix``; default ``/data/lake/hss_images``).

Each project lands in ``<lake>/project_id=<id>/snapshot_date=<date>/``, the UTC date the
task read the inventory on (the API has no history, so that is the only honest label). A
retry resumes: from its second try the operator skips every project an earlier try
published for that date (``skip_published``), so a task that failed on its 60th project
reads only that one again. A run standing for a day before yesterday (a backfill, a cleared
old run) skips its sync tasks with a message instead of writing today's inventory under a
day that is over.

The day's run records ONE event on the lake's Asset (``lake_asset()``, named
``hss_images_lake``), once every sync has finished for good (published or finally failed),
with what the day holds in its ``extra``: the snapshot date, the projects published and
failed, the rows and files, the run ids, and what changed since each project's previous
snapshot (``changes``: images appeared, removed and changed, as ``hss-images diff`` counts
them; the diff's summary is in the task's log). A DAG with ``schedule=[lake_asset()]`` runs once a
day, on the whole day. A sync that failed for good still fails the DAG run
(``failed_syncs``), after the event has recorded what was published.

With ``pip install 'hss-image-connector[openlineage]'`` and an OpenLineage transport
configured, each sync task also reports its lineage: the projects' API resources read, the
lake written (schema, rows, bytes) and the quarantined records (README, Lineage).

Try it without a scheduler: ``python examples/hss_images_dag.py [YYYY-MM-DD]``.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Variable, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from connector.airflow import HssImageSyncOperator, day_changes, day_extra, lake_asset

LAKE_PATH = "{{ var.value.get('hss_images_lake_path', '/data/lake/hss_images') }}"
HSS_IMAGES_LAKE = lake_asset()
"""The lake as an Airflow Asset, named ``hss_images_lake`` (its path is a Variable, read
only when a task runs): ``record_day`` records the day's event on it."""
MAX_PARALLEL_CONNECTIONS = 4
"""Connections synced at once: each is a credential of its own with a budget of its own, so
this caps the workers' load (memory, sockets), not the gateway's."""


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
    @task(retries=0)
    def connections() -> list[str]:
        """The connections to sync: the Variable ``hss_images_conn_ids`` (a JSON list)."""
        ids = Variable.get("hss_images_conn_ids", default=["hss_default"], deserialize_json=True)
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise AirflowFailException(
                f"Variable hss_images_conn_ids: expected a JSON list of connection ids, got {ids!r}"
            )
        return ids

    syncs = HssImageSyncOperator.partial(
        task_id="sync",
        out=LAKE_PATH,
        max_quarantined="1%",
        outlets=[],  # the day's event is recorded once, by record_day
        max_active_tis_per_dagrun=MAX_PARALLEL_CONNECTIONS,
        map_index_template="{{ task.hss_conn_id }}",
    ).expand(hss_conn_id=connections())

    @task(trigger_rule="all_done", retries=0, outlets=[HSS_IMAGES_LAKE])
    def record_day(lake: str, **context: Any) -> dict[str, Any]:
        """One event on the lake's Asset for the whole day, once every sync has finished
        for good; its ``extra`` says what the day holds (``day_extra``) and what changed
        since each project's previous snapshot (``day_changes``: ``hss-images diff``)."""
        ti = context["ti"]
        reports = [
            report
            for key in ("return_value", "report")  # a sync that failed pushed "report"
            for report in ti.xcom_pull(task_ids=["sync"], key=key) or []
            if report
        ]
        extra = day_extra(reports)
        if not extra["projects_published"]:
            raise AirflowSkipException(f"nothing was published: no event ({extra})")
        extra["changes"] = day_changes(lake, extra)
        context["outlet_events"][HSS_IMAGES_LAKE].extra = extra
        print(f"hss_images day: {extra}")
        return extra

    @task(trigger_rule="one_failed", retries=0)
    def failed_syncs() -> None:
        """A sync failed for good: fail the DAG run too (record_day still records the rest)."""
        raise AirflowFailException("a sync task failed: its log names the projects and errors")

    syncs >> [record_day(LAKE_PATH), failed_syncs()]


hss_images_dag = hss_images()

if __name__ == "__main__":
    logical = pendulum.parse(sys.argv[1]) if len(sys.argv) > 1 else pendulum.now("UTC")
    hss_images_dag.test(logical_date=logical)
