"""The example DAG, the provider and the operator under a real Airflow 3, against the
embedded simulator on a real socket (see ``airflow_env.py`` for how Airflow is run).
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

import connector
from connector.simulator import (
    NATURAL_KEY,
    RunningSimulator,
    SimulatorConfig,
    simulator_in_thread,
)
from tests.integration.helpers import EVERY_EP

from .airflow_env import (
    AIRFLOW_BIN,
    NEEDS_AIRFLOW,
    ROOT,
    SUBPROCESS_TIMEOUT_S,
    AirflowEnv,
    openlineage_env,
    openlineage_events,
)

KILL_RUNNER = Path(__file__).with_name("airflow_on_kill_runner.py")
TOKEN = secrets.token_hex(24)
PROJECT_RECORDS = {"proj-alpha": 450, "proj-beta": 120, "proj-gamma": 35}

pytestmark = NEEDS_AIRFLOW


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        records=10, project_records=PROJECT_RECORDS, tokens=frozenset({TOKEN}), seed=7
    )
    with simulator_in_thread(config) as running:
        yield running


def _today() -> date:
    return datetime.now(UTC).date()


def _connection(simulator: RunningSimulator, token: str) -> dict[str, Any]:
    return {
        "conn_type": "generic",
        "password": token,
        "extra": {"endpoint": simulator.base_url, "project_ids": list(PROJECT_RECORDS)},
    }


def test_example_dag_syncs_every_project_into_the_lake(
    airflow: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    logical_date = _today()
    expected = {p: simulator.inventory.total(p, **EVERY_EP) for p in PROJECT_RECORDS}
    assert all(expected.values())

    run = airflow.run_dag(_connection(simulator, TOKEN), lake, logical_date)
    read_on = {logical_date, _today()}  # the day the tasks read on (the test may span midnight)

    assert run.state == "success", run.output[-5000:]
    assert run.task_states("connections") == {-1: "success"}
    # one task per credential: every project of the connection in one sync
    assert run.task_states("sync") == {0: "success"}
    assert run.task_states("record_day") == {-1: "success"}
    assert run.task_states("failed_syncs") == {-1: "skipped"}
    rendered = {t["rendered_map_index"] for t in run.tasks if t["task_id"] == "sync"}
    assert rendered == {"hss_default"}  # map_index_template names each mapped task

    [report] = run.xcoms("sync").values()
    assert report["status"] == "success"
    assert report["exit_code"] == 0
    assert report["snapshot_date"] in {d.isoformat() for d in read_on}
    assert report["snapshot_date_origin"] == "default"  # the date of reading
    assert {p: d["status"] for p, d in report["projects"].items()} == dict.fromkeys(
        PROJECT_RECORDS, "published"
    )
    assert {p: d["records_written"] for p, d in report["projects"].items()} == expected

    rows = duckdb.sql(
        "SELECT project_id, snapshot_date, count(*) FROM read_parquet("
        f"'{lake.as_posix()}/**/*.parquet', hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    assert {p: n for p, _, n in rows} == expected
    assert len({d for _, d, _ in rows}) == 1 and {d for _, d, _ in rows} <= read_on

    # ONE event on the lake's asset for the day, once every sync is settled, saying what
    # the day holds
    day = {
        "snapshot_date": report["snapshot_date"],
        "projects_published": sorted(PROJECT_RECORDS),
        "projects_failed": [],
        "rows": sum(expected.values()),
        "files": len(PROJECT_RECORDS),
        "run_ids": [report["run_id"]],
    }
    # the lake's first day: no earlier snapshot to compare with
    zero = {"appeared": 0, "removed": 0, "changed": 0}
    day["changes"] = {
        "total": zero,
        "projects": {},
        "one_sided": {p: {"from_date": None, "to_date": day["snapshot_date"]} for p in expected},
        "quarantined": {},
    }
    assert run.asset_events == [
        {"uri": "hss_images_lake", "name": "hss_images_lake", "task_id": "record_day", "extra": day}
    ]
    assert run.xcoms("record_day") == {-1: day}

    assert "HssImageSyncOperator" in run.output and "records written" in run.output
    assert TOKEN not in run.output
    assert airflow.files_mentioning(TOKEN) == []


def test_the_example_dag_reads_every_enterprise_project(
    airflow: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    """The sync reads ``all_granted_eps`` unless told otherwise: every project's images of
    every enterprise project land in the lake, not only those of the API's default ("0").

    The API does not return a record's enterprise project (there is no such column in the
    lake): the simulator's own record of it, by natural key, tells which one each row is of.
    """
    lake = tmp_path / "lake"
    events = tmp_path / "openlineage.jsonl"
    inventory = simulator.inventory
    enterprise_projects = inventory.enterprise_project_ids
    expected = Counter(
        {
            (p, ep): inventory.total(p, enterprise_project_id=ep)
            for p in PROJECT_RECORDS
            for ep in enterprise_projects
        }
    )
    # several enterprise projects, each holding images; each project has some outside "0"
    assert len(enterprise_projects) >= 3, enterprise_projects
    assert all(sum(expected[p, ep] for p in PROJECT_RECORDS) for ep in enterprise_projects)
    assert all(sum(expected[p, ep] for ep in enterprise_projects[1:]) for p in PROJECT_RECORDS)
    owner = {p: inventory.hidden_by_natural_key(p, **EVERY_EP) for p in PROJECT_RECORDS}

    run = airflow.run_dag(
        _connection(simulator, TOKEN), lake, _today(), env=openlineage_env(events)
    )

    assert run.state == "success", run.output[-5000:]
    [report] = run.xcoms("sync").values()
    assert report["query"] == EVERY_EP
    rows = duckdb.sql(
        f"SELECT project_id, {', '.join(NATURAL_KEY)} FROM read_parquet("
        f"'{lake.as_posix()}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    found = Counter((p, owner[p][tuple(key)].enterprise_project_id) for p, *key in rows)
    assert found == expected  # per project and enterprise project, as the simulator holds
    assert len(rows) == sum(inventory.total(p, **EVERY_EP) for p in PROJECT_RECORDS)

    # the sync task's lineage names every project it read, and what it wrote
    completed = openlineage_events(events, "hss_images.sync")
    assert sorted(e["eventType"] for e in completed) == ["COMPLETE", "START"]
    [event] = [e for e in completed if e["eventType"] == "COMPLETE"]
    [output] = event["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(lake.resolve()))
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == len(rows)
    read = {}
    for source in event["inputs"]:
        assert source["namespace"] == simulator.base_url
        project = source["name"].split("/")[2]
        read[project] = source["inputFacets"]["dataQualityMetrics"]["rowCount"]
    assert read == {p: inventory.total(p, **EVERY_EP) for p in PROJECT_RECORDS}
    assert TOKEN not in events.read_text()


def test_a_rejected_token_fails_the_tasks_with_the_connectors_error(
    airflow: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    bad_token = "rejected-" + secrets.token_hex(24)

    run = airflow.run_dag(_connection(simulator, bad_token), lake, _today())

    assert run.state == "failed"
    assert run.task_states("connections") == {-1: "success"}
    # an AuthError is not retried: the task fails at once instead of waiting for a retry
    assert run.task_states("sync") == {0: "failed"}
    assert run.task_states("record_day") == {-1: "skipped"}  # nothing published, no event
    assert run.task_states("failed_syncs") == {-1: "failed"}  # and the run fails
    # the task's exception carries the connector's error, one line per failed project
    n = len(PROJECT_RECORDS)
    assert (
        f"AirflowFailException: HSS image sync failed: {n} of {n} project(s) failed" in run.output
    )
    failure = re.compile(
        r"\nAuthError: the credentials were rejected.*\(project (proj-\w+), .*HTTP 401, "
        r"error_code APIG\.0301"
    )
    assert set(failure.findall(run.output)) == set(PROJECT_RECORDS), run.output[-5000:]
    [report] = run.xcoms("sync", key="report").values()
    assert report["status"] == "failed"
    assert {d["error_type"] for d in report["projects"].values()} == {"AuthError"}
    assert not list(lake.rglob("*.parquet"))

    assert run.asset_events == []  # no data, no event
    assert bad_token not in run.output
    assert airflow.files_mentioning(bad_token) == []


def test_a_run_for_a_past_day_is_skipped_instead_of_faking_that_days_snapshot(
    airflow: AirflowEnv, simulator: RunningSimulator, tmp_path: Path
) -> None:
    """A backfill, catch-up or cleared old run cannot read the inventory of its day (the API
    has no history): it skips, saying why, rather than writing today's images under it."""
    lake = tmp_path / "lake"
    past = _today() - timedelta(days=30)

    run = airflow.run_dag(_connection(simulator, TOKEN), lake, past)

    assert run.task_states("connections") == {-1: "success"}
    assert run.task_states("sync") == {0: "skipped"}
    assert run.task_states("record_day") == {-1: "skipped"}
    assert run.task_states("failed_syncs") == {-1: "skipped"}
    assert run.state == "success", run.output[-5000:]  # nothing failed: there was nothing to do
    assert f"this run stands for {past}" in run.output
    assert "the HSS API has no history" in run.output
    assert not lake.exists() or not list(lake.rglob("*.parquet"))
    assert run.asset_events == []


# ------------------------------------------------------------- the provider registration


def _json_table(output: str) -> list[dict[str, Any]]:
    """The JSON list an ``airflow ... -o json`` command printed (after any log lines)."""
    return list(json.loads(output[output.index("[") :]))


def test_airflow_discovers_the_provider_its_hook_and_connection_type(airflow: AirflowEnv) -> None:
    """The ``apache_airflow_provider`` entry point is all Airflow needs to list the hook."""
    hooks = airflow.command("providers", "hooks", "-o", "json")
    assert hooks.returncode == 0, hooks.stderr[-3000:]
    [hook] = [h for h in _json_table(hooks.stdout) if h["connection_type"] == "hss"]
    assert hook == {
        "connection_type": "hss",
        "class": "connector.airflow.hooks.hss.HssHook",
        "conn_id_attribute_name": "hss_conn_id",
        "package_name": "hss-image-connector",
        "hook_name": "Huawei Cloud HSS",
    }
    providers = airflow.command("providers", "list", "-o", "json")
    assert providers.returncode == 0, providers.stderr[-3000:]
    [ours] = [
        p for p in _json_table(providers.stdout) if p["package_name"] == "hss-image-connector"
    ]
    assert ours["version"] == connector.__version__

    behaviours = airflow.command("providers", "behaviours", "-o", "json")
    assert behaviours.returncode == 0, behaviours.stderr[-3000:]
    assert {"field_behaviours": "hss"} in _json_table(behaviours.stdout)
    widgets = airflow.command("providers", "widgets", "-o", "json")
    assert widgets.returncode == 0, widgets.stderr[-3000:]
    ours_widgets = {
        w["connection_parameter_name"]: w["field_type"]
        for w in _json_table(widgets.stdout)
        if w["package_name"] == "hss-image-connector"
    }
    assert ours_widgets["extra__hss__rate"] == ["number", "null"]
    assert ours_widgets["extra__hss__concurrency"] == ["integer", "null"]
    assert {f"extra__hss__{k}" for k in ("auth", "region", "endpoint", "project_ids")} <= set(
        ours_widgets
    )
    assert {f"extra__hss__{k}" for k in ("enterprise_project_id", "rate", "concurrency")} <= set(
        ours_widgets
    )


def test_airflow_loads_the_provider_and_the_operator_without_the_http_pipeline(
    airflow: AirflowEnv,
) -> None:
    """Airflow reads the provider info in its scheduler, webserver and CLI, and parses DAG
    files that import the operator again and again: neither loads the pipeline (aiohttp,
    msgspec's decoder, the crawl), which waits for a task to run."""
    loaded = airflow.python(
        "import json, sys\n"
        "heavy = ('aiohttp', 'pyarrow', 'connector.job.pipeline')\n"
        "from connector.airflow.provider import get_provider_info\n"
        "get_provider_info()\n"
        "provider = sorted(m for m in heavy if m in sys.modules)\n"
        "from connector.airflow import HssImageSyncOperator\n"
        "operator = sorted(m for m in heavy if m in sys.modules)\n"
        "print(json.dumps([provider, operator]))"
    )
    assert loaded == [[], ["pyarrow"]]  # pyarrow: the lineage facets' schema


def test_the_connection_form_relabels_and_explains_its_fields(airflow: AirflowEnv) -> None:
    """What the UI draws: the behaviour and the form fields as Airflow's ProvidersManager
    holds them, read from the provider info without the deprecated per-hook methods."""
    found = airflow.python(
        "import json, warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "m = ProvidersManager()\n"
        "w = {k: [v.field['schema'].get('title'), v.is_sensitive]\n"
        "     for k, v in m.connection_form_widgets.items() if k.startswith('extra__hss__')}\n"
        "print(json.dumps({'behaviour': m.field_behaviours['hss'], 'widgets': w}))"
    )
    behaviour = found["behaviour"]
    assert behaviour["hidden_fields"] == []  # Host, Port and Schema name the endpoint
    assert set(behaviour["relabeling"]) == {"host", "port", "schema", "login", "password"}
    assert behaviour["placeholders"]["host"] == "hss.cn-north-4.myhuaweicloud.com"
    assert behaviour["placeholders"]["extra__hss__region"] == "cn-north-4"
    assert behaviour["placeholders"]["extra__hss__enterprise_project_id"] == "all_granted_eps"
    widgets = found["widgets"]
    assert widgets["extra__hss__project_ids"] == ["Project IDs", False]
    assert widgets["extra__hss__security_token"][1] is True  # a secret: masked in the form


def _hss_connection(simulator: RunningSimulator, token: str) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_HSS_DEFAULT": json.dumps(
            {
                "conn_type": "hss",
                "password": token,
                "extra": {"endpoint": simulator.base_url, "project_ids": ",".join(PROJECT_RECORDS)},
            }
        ),
    }


def test_airflow_connections_test_reads_one_page_of_the_first_project(
    airflow: AirflowEnv, simulator: RunningSimulator
) -> None:
    before = len(simulator.stats.log)

    done = airflow.command(
        "connections", "test", "hss_default", env=_hss_connection(simulator, TOKEN)
    )

    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Connection success!" in done.stdout
    [request] = list(simulator.stats.log)[before:]  # one small page of the first project
    assert (request.project_id, request.offset, request.limit) == ("proj-alpha", 0, 10)
    assert TOKEN not in done.stdout + done.stderr


def test_airflow_connections_test_fails_with_the_apis_error_and_never_the_token(
    airflow: AirflowEnv, simulator: RunningSimulator
) -> None:
    bad_token = "rejected-" + secrets.token_hex(24)

    done = airflow.command(
        "connections", "test", "hss_default", env=_hss_connection(simulator, bad_token)
    )

    output = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 1, output[-3000:]
    assert "Connection failed!" in output
    assert "AuthError: the credentials were rejected" in output
    assert "HTTP 401" in output and "error_code APIG.0301" in output
    assert "project proj-alpha" in output  # the first project, named
    assert bad_token not in output


def test_a_connection_uri_with_a_host_is_the_endpoint_of_the_hook(
    airflow: AirflowEnv, simulator: RunningSimulator
) -> None:
    """As a new user writes it: ``hss://:TOKEN@HOST:PORT/SCHEMA?project_ids=...`` in an
    ``AIRFLOW_CONN_...`` variable; ``https`` unless the schema says ``http``."""
    host, port = simulator.base_url.removeprefix("http://").split(":")
    before = len(simulator.stats.log)
    env = {
        "AIRFLOW_CONN_HSS_LOCAL": f"hss://:{TOKEN}@{host}:{port}/http?project_ids=proj-alpha",
        "AIRFLOW_CONN_HSS_CLOUD": f"hss://:{TOKEN}@hss.example.test:443/?project_ids=p1",
    }

    found = airflow.python(
        "import json\n"
        "from connector.airflow import HssHook\n"
        "local, cloud = HssHook('hss_local'), HssHook('hss_cloud')\n"
        "ok, message = local.test_connection()\n"
        "print(json.dumps([local.get_config(out='.').endpoint,\n"
        "                  cloud.get_config(out='.').endpoint, ok, message]))",
        env=env,
    )

    local, cloud, ok, message = found
    assert (local, cloud) == (simulator.base_url, "https://hss.example.test:443")
    assert ok, message
    assert message.startswith(f"read project proj-alpha at {simulator.base_url}")
    [request] = list(simulator.stats.log)[before:]
    assert (request.project_id, request.offset, request.limit) == ("proj-alpha", 0, 10)


# ------------------------------------------------------------------- the operator's on_kill


def test_sigterm_stops_the_operator_cleanly_through_on_kill(
    airflow: AirflowEnv, tmp_path: Path
) -> None:
    """Airflow 3 stops a task with SIGTERM, whose handler calls ``on_kill`` on the thread
    that runs the sync: the run is cancelled, its staging removed, nothing published."""
    slow = SimulatorConfig(records=4_000, tokens=frozenset({TOKEN}), seed=9, latency_ms=30)
    out = tmp_path / "lake"
    with simulator_in_thread(slow) as hss:
        env = {
            **airflow.base_env,
            "AIRFLOW_CONN_HSS_DEFAULT": json.dumps(
                {
                    "conn_type": "hss",
                    "password": TOKEN,
                    "extra": {"endpoint": hss.base_url, "project_ids": "p1,p2", "rate": 0},
                }
            ),
        }
        process = subprocess.Popen(
            [str(AIRFLOW_BIN / "python"), str(KILL_RUNNER), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        while hss.stats.requests < 6 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        staged = list((tmp_path / "lake.connector" / "staging").rglob("*"))
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        requests = hss.stats.requests

    assert process.returncode == 0, (stdout + stderr)[-5000:]
    assert "raised AirflowException: HSS image sync stopped (on_kill)" in stdout, stdout + stderr
    assert staged, "the run was staging files when it was killed"
    assert requests < 4_000 * 2 / 200, "stopped, not run to its end"
    assert not list(out.rglob("*.parquet")), "nothing half-published"
    assert not (tmp_path / "lake.connector" / "staging").exists(), "staging removed"
    assert TOKEN not in stdout + stderr


# ------------------------------------------------------------- installing under Airflow


def test_the_wheel_installs_under_the_tested_airflows_pins(
    airflow: AirflowEnv, tmp_path: Path
) -> None:
    """Installed under Airflow's constraints file, every package keeps the version Airflow
    pinned: the built wheel's requirements (with the airflow and openlineage extras) must
    all hold for the versions the tested Airflow's environment holds, and pip finds nothing
    broken there (docs/airflow.md, Installing)."""
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = dist.glob(f"hss_image_connector-{connector.__version__}-*.whl")
    code = f"""
import json, zipfile
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
meta = next(n for n in zipfile.ZipFile({str(wheel)!r}).namelist() if n.endswith("METADATA"))
text = zipfile.ZipFile({str(wheel)!r}).read(meta).decode()
unmet, checked = [], []
for line in text.splitlines():
    if not line.startswith("Requires-Dist: "):
        continue
    req = Requirement(line.removeprefix("Requires-Dist: "))
    if req.marker and not any(req.marker.evaluate({{"extra": e}}) for e in ("", "airflow", "openlineage")):
        continue
    checked.append(req.name)
    try:
        have = version(req.name)
    except PackageNotFoundError:
        unmet.append(f"{{req}}: not installed")
        continue
    if not req.specifier.contains(have, prereleases=True):
        unmet.append(f"{{req}}: {{have}} installed")
print(json.dumps([unmet, checked]))
"""
    unmet, checked = airflow.python(code)
    assert unmet == []
    assert {"apache-airflow", "pyarrow", "aiohttp", "apache-airflow-providers-openlineage"} <= {
        name.lower() for name in checked
    }
    checked = subprocess.run(
        [str(AIRFLOW_BIN / "python"), "-m", "pip", "check"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    pinned = (ROOT / "requirements" / "airflow.txt").read_text()
    airflow_version = re.search(r"^apache-airflow==(\S+)$", pinned, re.MULTILINE)
    assert airflow_version is not None
    manual = (ROOT / "docs" / "airflow.md").read_text()
    assert f"AIRFLOW_VERSION={airflow_version[1]}" in manual  # the install shown is the tested one
    assert f"hss-image-connector[airflow,openlineage]=={connector.__version__}" in manual
