"""A DAG scheduled on the lake's Asset, as the README shows it: it must run once a day, on
the whole day (the example DAG records one event per day's run)."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import dag

from connector.airflow import lake_asset


@dag(
    dag_id="hss_images_downstream",
    schedule=[lake_asset()],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
)
def hss_images_downstream() -> None:
    EmptyOperator(task_id="read_the_day")  # the scheduler settles it without a worker


downstream_dag = hss_images_downstream()
