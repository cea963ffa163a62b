"""Run a DAG file once with ``dag.test()`` and write what happened as JSON.

Runs under the Airflow virtualenv (not the project's), started by ``test_airflow.py``:

    .venv-airflow/bin/python airflow_runner.py DAG_FILE DAG_VARIABLE LOGICAL_DATE RESULT_JSON

The environment carries AIRFLOW_HOME (migrated), the connection and the variables. The
result holds the run's state, every task instance, every XCom and every asset event of
the run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def main(dag_file: str, variable: str, logical_date: str, result_path: str) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    spec = importlib.util.spec_from_file_location(Path(dag_file).stem, dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, variable)

    when = datetime.fromisoformat(logical_date).replace(tzinfo=UTC)
    run = dag.test(logical_date=when)

    result: dict[str, Any] = {
        "run_id": run.run_id,
        "state": str(run.state),
        "tasks": [],
        "xcom": [],
        "asset_events": [],
    }
    with create_session() as session:
        instances = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id
            )
        )
        for ti in instances:
            result["tasks"].append(
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "rendered_map_index": ti.rendered_map_index,
                    "state": str(ti.state),
                    "try_number": ti.try_number,
                }
            )
        for row in session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=dag.dag_id)):
            result["xcom"].append(
                {
                    "task_id": row.task_id,
                    "map_index": row.map_index,
                    "key": row.key,
                    "value": XComModel.deserialize_value(row),
                }
            )
        events = session.execute(
            select(AssetModel.uri, AssetModel.name, AssetEvent.source_task_id, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_run_id == run.run_id)
        )
        for uri, name, task_id, extra in events:
            result["asset_events"].append(
                {"uri": uri, "name": name, "task_id": task_id, "extra": extra}
            )
    Path(result_path).write_text(json.dumps(result, default=str, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:5])
