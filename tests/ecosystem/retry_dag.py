"""The sync operator alone, retried a second later: a retry must resume, not redo the day.

Its ``out`` is templated, so it declares the lake's Asset by name (``hss_images_lake``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from connector.airflow import HssImageSyncOperator


@dag(
    dag_id="hss_images_retry",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
)
def hss_images_retry() -> None:
    HssImageSyncOperator(
        task_id="sync",
        out="{{ var.value.hss_images_lake_path }}",
        retries=1,
        retry_delay=timedelta(seconds=1),
    )


retry_dag = hss_images_retry()
