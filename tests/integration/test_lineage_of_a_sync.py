"""connector.airflow.lineage: the OpenLineage datasets of a real sync against the simulator.

tests/unit/test_lineage.py builds them without a run; tests/ecosystem/test_lineage.py
captures the same under the real Airflow with the OpenLineage provider.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from openlineage.client.serde import Serde

from connector import RunReport
from connector.airflow.lineage import SyncFacts, datasets, schema_fields
from connector.simulator import FaultConfig, SimulatorConfig, simulator_in_thread

from .helpers import EVERY_EP, TOKEN, config, sync

PROJECT_RECORDS = {"p1": 300, "p2": 80}


def _as_json(value: Any) -> Any:
    return json.loads(Serde.to_json(value))


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, RunReport, SyncFacts]:
    """A real sync of two projects, some records of which the simulator spoils."""
    sim_config = SimulatorConfig(
        records=10,
        project_records=PROJECT_RECORDS,
        tokens=frozenset({TOKEN}),
        seed=11,
        faults=FaultConfig(fraction_rate=0.02),
    )
    out = tmp_path_factory.mktemp("lineage") / "lake"
    with simulator_in_thread(sim_config) as sim:
        cfg = config(sim.base_url, out, tuple(PROJECT_RECORDS))
        report = sync(cfg)
        facts = SyncFacts.of(cfg).ended(report.to_dict())
        return sim, out, report, facts


def test_the_datasets_of_a_real_sync(synced: tuple[Any, Path, RunReport, SyncFacts]) -> None:
    sim, out, report, facts = synced
    inputs, outputs = datasets(facts)

    assert [(d.namespace, d.name) for d in inputs] == [
        (sim.base_url, f"/v5/{p}/image/local-repositories") for p in PROJECT_RECORDS
    ]
    spoiled = 0
    for dataset, project in zip(inputs, PROJECT_RECORDS, strict=True):
        facets = _as_json(dataset)["inputFacets"]
        expected_bad = len(sim.inventory.quarantine_keys(project, **EVERY_EP))
        spoiled += expected_bad
        assert facets["dataQualityMetrics"]["rowCount"] == sim.inventory.total(project, **EVERY_EP)
        checks = {
            (a["name"], a.get("column")): a for a in facets["dataQualityAssertions"]["assertions"]
        }
        assert checks[("records_match_schema", None)]["actual"] == str(expected_bad)
        assert checks[("records_match_schema", None)]["params"]["quarantined"] == expected_bad
        assert checks[("max_quarantined", None)]["success"] is True
        assert checks[("project_published", None)] == {
            "assertion": "published",
            "name": "project_published",
            "success": True,
            "severity": "error",
            "expected": "published",
            "actual": "published",
            "params": {},
        }
    assert spoiled > 0, "the simulator spoiled no record: the quarantine is not exercised"

    [lake] = outputs
    data = _as_json(lake)
    assert (data["namespace"], data["name"]) == ("file", str(out.resolve()))
    fields = data["facets"]["schema"]["fields"]
    assert [(f["name"], f["type"], f["ordinal_position"]) for f in fields] == [
        (name, kind, i) for i, (name, kind, _) in enumerate(schema_fields(), start=1)
    ]
    parquet = sorted(out.rglob("*.parquet"))
    [[rows]] = duckdb.sql(
        f"select count(*) from read_parquet('{out.as_posix()}/**/*.parquet')"
    ).fetchall()
    assert data["outputFacets"]["outputStatistics"] == {
        "_producer": data["outputFacets"]["outputStatistics"]["_producer"],
        "_schemaURL": data["outputFacets"]["outputStatistics"]["_schemaURL"],
        "rowCount": rows,
        "size": sum(p.stat().st_size for p in parquet),
        "fileCount": len(parquet),
    }
    assert rows == report.records_written
    assert TOKEN not in Serde.to_json(lake) + "".join(Serde.to_json(d) for d in inputs)


def test_a_run_that_stopped_before_its_report_names_its_datasets_only(
    synced: tuple[Any, Path, RunReport, SyncFacts],
) -> None:
    *_, facts = synced
    started = SyncFacts(facts.targets, facts.out, facts.max_quarantined)

    inputs, [lake] = datasets(started)

    assert [d.inputFacets for d in inputs] == [{}, {}]
    assert lake.outputFacets == {}
    assert set(lake.facets or {}) == {"schema"}


def test_discovered_projects_are_the_inputs_once_the_run_has_listed_them(
    synced: tuple[Any, Path, RunReport, SyncFacts],
) -> None:
    """``all_projects``: the projects are known from the report, not from the config."""
    sim, _, report, facts = synced
    listed = SyncFacts((), facts.out, facts.max_quarantined).ended(report.to_dict())
    assert listed.targets == tuple((p, sim.base_url) for p in PROJECT_RECORDS)
    assert [(d.namespace, d.name) for d in datasets(listed)[0]] == [
        (d.namespace, d.name) for d in datasets(facts)[0]
    ]
