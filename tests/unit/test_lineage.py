"""connector.airflow.lineage: the OpenLineage datasets of a sync, built without Airflow.

The facets are the ``openlineage-python`` client's own objects, serialised with its own
``Serde``: what an event carries. tests/ecosystem/test_lineage.py captures the same under
the real Airflow with the OpenLineage provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openlineage.client.serde import Serde

from connector import OutputError, ProjectReport, RunReport
from connector.airflow.lineage import (
    SyncFacts,
    assertions,
    datasets,
    input_dataset,
    lake_dataset,
    published_bytes,
    published_parquet,
    schema_fields,
)
from connector.job import pipeline
from tests.integration.helpers import TOKEN
from tests.unit.test_airflow_hook import (  # the operator's stand-in Airflow
    FakeRun,
    FakeTaskInstance,
    StandIn,
    _report,
    airflow,  # noqa: F401
    as_async,
    module,  # noqa: F401
    operator,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "image_local_info.json"


def test_the_names_of_the_api_and_of_the_lake(tmp_path: Path, monkeypatch: Any) -> None:
    assert input_dataset("0a1b", "https://hss.cn-north-4.myhuaweicloud.com/") == (
        "https://hss.cn-north-4.myhuaweicloud.com",
        "/v5/0a1b/image/local-repositories",
    )
    monkeypatch.chdir(tmp_path)
    assert lake_dataset("lake/hss") == ("file", str(tmp_path.resolve() / "lake" / "hss"))
    assert lake_dataset("s3://bucket/lake/hss/") == ("s3://bucket", "lake/hss")
    assert lake_dataset("gs://bucket/x") == ("gs://bucket", "x")
    assert lake_dataset("file:///data/lake") == ("file", "/data/lake")
    assert lake_dataset("file://nas/data/lake") == ("file://nas", "/data/lake")


@given(
    bucket=st.from_regex(r"[a-z0-9][a-z0-9.-]{2,20}[a-z0-9]", fullmatch=True),
    parts=st.lists(st.from_regex(r"[A-Za-z0-9_=.-]{1,12}", fullmatch=True), min_size=1),
)
def test_an_s3_lake_is_its_bucket_and_prefix(bucket: str, parts: list[str]) -> None:
    prefix = "/".join(parts)
    namespace, name = lake_dataset(f"s3://{bucket}/{prefix}")
    assert (namespace, name) == (f"s3://{bucket}", prefix)
    assert f"{namespace}/{name}" == f"s3://{bucket}/{prefix}"  # the lake's URI, whole


def test_the_schema_is_every_field_of_the_schema_file_with_its_type() -> None:
    spec = json.loads(SCHEMA_FILE.read_text())
    every = spec["fields"] + spec["connector_fields"]
    in_files = [f for f in every if not f.get("partition")]
    partitions = [f for f in every if f.get("partition")]
    assert schema_fields() == [
        (f["name"], f["type"], f["description"]) for f in in_files + partitions
    ]


_project = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["published", "superseded", "failed", "interrupted"]),
        "records_fetched": st.integers(0, 10**6),
        "records_quarantined": st.integers(0, 10**4),
        "quarantine_fields": st.dictionaries(
            st.sampled_from([name for name, _, _ in schema_fields()]), st.integers(1, 100)
        ),
        "error_type": st.sampled_from([None, "QuarantineLimitError", "ApiError", "AuthError"]),
        "error": st.sampled_from([None, "HTTP 400, error_code HSS.0013"]),
    }
)


@given(project=_project, limit=st.sampled_from(["0", "50", "1%"]))
def test_the_assertions_carry_the_quarantined_count_the_limit_and_the_outcome(
    project: dict[str, Any], limit: str
) -> None:
    found = {(a.name, a.column): a for a in assertions(project, limit)}
    quarantined = project["records_quarantined"]

    overall = found[("records_match_schema", None)]
    assert overall.actual == str(quarantined) and overall.expected == "0"
    assert overall.success is (quarantined == 0)
    assert overall.params == {"quarantined": quarantined, "read": project["records_fetched"]}
    for name, count in project["quarantine_fields"].items():
        per_field = found[("records_match_schema", name)]
        assert (per_field.success, per_field.actual) == (False, str(count))
    limit_check = found[("max_quarantined", None)]
    assert limit_check.expected == f"<= {limit}"
    assert limit_check.success is (project["error_type"] != "QuarantineLimitError")
    published = found[("project_published", None)]
    assert published.actual == project["status"]
    assert published.success is (project["status"] in ("published", "superseded"))
    if project["error_type"]:
        assert published.description is not None
        assert published.description.startswith(project["error_type"])
    assert len(found) == 3 + len(project["quarantine_fields"])


def test_only_published_parquet_files_count() -> None:
    report = {
        "projects": {
            "a": {
                "status": "published",
                "records_written": 5,
                "files": ["/l/a/data.parquet", "/l.connector/quarantine/a/quarantine.jsonl"],
            },
            "b": {"status": "superseded", "records_written": 9, "files": []},
            "c": {"status": "failed", "records_written": 0, "files": []},
        }
    }
    assert published_parquet(report) == ["/l/a/data.parquet"]


def test_the_bytes_are_the_files_on_disk_or_unknown(tmp_path: Path) -> None:
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    one.write_bytes(b"x" * 1000)
    two.write_bytes(b"y" * 24)
    assert published_bytes([str(one), str(two)]) == 1024
    assert published_bytes([]) == 0
    assert published_bytes([str(one), str(tmp_path / "replaced-since.parquet")]) is None


def test_a_secret_in_a_projects_error_stays_out_of_the_datasets() -> None:
    """The facts hold the report as ``to_dict()`` gives it: redacted by the run's redactor."""
    report = RunReport(
        run_id="r1",
        snapshot_date="2026-12-01",
        endpoint="https://hss.example.test",
        started_at="2026-12-01T00:00:00+00:00",
    )
    report.redactor.add(TOKEN)
    report.projects["p1"] = ProjectReport(
        "p1", error=f"the gateway echoed X-Auth-Token: {TOKEN}", error_type="ApiError"
    )
    facts = SyncFacts((("p1", "https://hss.example.test"),), "/lake", "10%")

    inputs, outputs = datasets(facts.ended(report.to_dict()))

    text = "".join(Serde.to_json(d) for d in [*inputs, *outputs])
    assert TOKEN not in text
    assert "X-Auth-Token: ***" in text  # the error is there, its secret is not


def test_the_module_imports_without_openlineage_or_airflow() -> None:
    code = (
        "import sys\n"
        "for name in ('openlineage', 'airflow'): sys.modules[name] = None\n"
        "import connector.airflow.lineage\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openlineage', 'airflow')"
        " and sys.modules[m] is not None))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


# ------------------------------------------- the operator's shell, with a stand-in provider


@dataclass
class OperatorLineage:
    """The provider's ``OperatorLineage``, as far as the operator uses it."""

    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)


@pytest.fixture
def provider(airflow: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    extractors = types.ModuleType("airflow.providers.openlineage.extractors")
    extractors.OperatorLineage = OperatorLineage  # type: ignore[attr-defined]
    for name in ("airflow.providers", "airflow.providers.openlineage"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, extractors.__name__, extractors)


def _today_iso() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.mark.usefixtures("provider")
def test_the_operator_reports_the_lineage_of_its_run(
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    airflow.connect()  # endpoint https://hss.example.test, project p1
    published = ProjectReport(
        "p1", status="published", records_fetched=8, records_written=7, records_quarantined=1
    )
    monkeypatch.setattr(pipeline, "run_async", as_async(FakeRun(_report(_today_iso(), published))))
    task = operator(module, max_quarantined="1%")

    started = task.get_openlineage_facets_on_start()
    task.execute({"ti": FakeTaskInstance()})
    lineage = task.get_openlineage_facets_on_complete(None)

    assert started.inputs == []
    [planned] = started.outputs
    assert (planned.namespace, planned.name, planned.outputFacets) == ("file", "/lake", {})
    assert planned.facets["schema"] == lineage.outputs[0].facets["schema"]
    [source] = lineage.inputs
    assert (source.namespace, source.name) == (
        "https://hss.example.test",
        "/v5/p1/image/local-repositories",
    )
    checks = {(a.name, a.column): a for a in source.inputFacets["dataQualityAssertions"].assertions}
    assert checks[("records_match_schema", None)].actual == "1"
    assert checks[("max_quarantined", None)].expected == "<= 1%"
    [lake] = lineage.outputs
    assert (lake.namespace, lake.name) == ("file", "/lake")
    statistics = lake.outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.fileCount, statistics.size) == (7, 0, 0)


@pytest.mark.usefixtures("provider")
def test_a_failed_task_keeps_its_report_for_the_fail_event(
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    airflow.connect()
    failed = ProjectReport(
        "p1", error="HTTP 400, error_code HSS.0013", error_type="ApiError", exit_code=3
    )
    monkeypatch.setattr(pipeline, "run_async", as_async(FakeRun(_report(_today_iso(), failed))))
    task = operator(module)

    with pytest.raises(airflow.AirflowException):
        task.execute({"ti": FakeTaskInstance()})
    [source] = task.get_openlineage_facets_on_complete(None).inputs

    checks = {a.name: a for a in source.inputFacets["dataQualityAssertions"].assertions}
    published = checks["project_published"]
    assert (published.success, published.actual) == (False, "failed")
    assert published.description == "ApiError: HTTP 400, error_code HSS.0013"


@pytest.mark.usefixtures("provider")
def test_a_run_that_stopped_before_its_report_or_was_skipped(
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    airflow.connect()
    run = FakeRun(OutputError("cannot create /lake: read-only"))
    monkeypatch.setattr(pipeline, "run_async", as_async(run))
    task = operator(module)

    with pytest.raises(airflow.AirflowException):
        task.execute({"ti": FakeTaskInstance()})
    lineage = task.get_openlineage_facets_on_complete(None)
    assert [(d.name, d.inputFacets) for d in lineage.inputs] == [
        ("/v5/p1/image/local-repositories", {})
    ]
    assert [d.outputFacets for d in lineage.outputs] == [{}]

    past = datetime.combine(datetime.now(UTC).date() - timedelta(days=3), datetime.min.time(), UTC)
    with pytest.raises(airflow.AirflowSkipException):
        task.execute({"ti": FakeTaskInstance(), "logical_date": past})
    assert task.get_openlineage_facets_on_complete(None) == OperatorLineage()
