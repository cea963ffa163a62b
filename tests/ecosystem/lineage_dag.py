"""One HSS image sync task, for the OpenLineage test (``test_lineage.py``).

The connection is ``hss_default``; the lake is the Variable ``hss_images_lake_path``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from connector.airflow import HssImageSyncOperator

with DAG(
    dag_id="hss_images_lineage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
) as lineage_dag:
    HssImageSyncOperator(
        task_id="sync",
        out="{{ var.value.hss_images_lake_path }}",
        max_quarantined="{{ var.value.get('hss_images_max_quarantined', '10%') }}",
    )
