"""Run ``HssImageSyncOperator.execute`` under the real Airflow, stopped the way Airflow 3's
task runner stops a task: its SIGTERM handler calls the operator's ``on_kill``.

Runs under the Airflow virtualenv, started by ``test_airflow.py``:

    .venv-airflow/bin/python airflow_on_kill_runner.py OUT

The connection comes from AIRFLOW_CONN_HSS_DEFAULT. Prints ``started`` when execute is
about to run; on exit prints ``raised <type>: <message>`` or ``returned``.
"""

from __future__ import annotations

import signal
import sys


def main(out: str) -> None:
    from airflow.sdk.exceptions import AirflowException

    from connector.airflow import HssImageSyncOperator

    task = HssImageSyncOperator(task_id="sync", out=out)
    # what airflow.sdk.execution_time.task_runner installs around execute()
    signal.signal(signal.SIGTERM, lambda signum, frame: task.on_kill())
    print("started", flush=True)
    try:
        task.execute({"ti": None})
    except AirflowException as error:
        print(f"raised {type(error).__name__}: {error}", flush=True)
        return
    print("returned", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
