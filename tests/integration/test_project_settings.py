"""A project's own settings in ``[[projects]]`` reach the API, by the real CLI.

The simulator's request log holds the ``total_num`` it answered each request with: equal to
the simulator's own count for the project's filters (and not the run's), it proves which
query the API was sent; the lake and the report then hold what that query reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from connector.lake.layout import Stamp, canonical_query
from connector.simulator import SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import EVERY_EP, TOKEN, read_rows

P1, P2 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_a_projects_own_enterprise_project_and_filter_reach_the_api(
    cli: Cli, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    config = tmp_path / "sync.toml"
    config.write_text(
        f'out = "{lake}"\nrate = 0\nhas_vul = true\n'
        f'[[projects]]\nid = "{P1}"\n'
        f'[[projects]]\nid = "{P2}"\nenterprise_project_id = "0"\nscan_status = "success"\n'
    )
    own = {"enterprise_project_id": "0", "has_vul": True, "scan_status": "success"}
    with simulator_in_thread(
        SimulatorConfig(seed=21, project_records={P1: 500, P2: 500}, tokens=frozenset({TOKEN}))
    ) as sim:
        report_path = tmp_path / "report.json"
        args = ("--config", str(config), "--endpoint", sim.base_url, "--report", str(report_path))
        result = cli("sync", *args, env={"HSS_AUTH_TOKEN": TOKEN})
        assert result.returncode == 0, result.stderr
        again = cli("sync", *args, env={"HSS_AUTH_TOKEN": TOKEN})  # the stamps agree
        assert again.returncode == 0, again.stderr
        run_p1 = sim.inventory.total(P1, **EVERY_EP, has_vul=True)
        run_p2 = sim.inventory.total(P2, **EVERY_EP, has_vul=True)
        own_p2 = sim.inventory.total(P2, **own)
        answered = {
            project: {e.total_num for e in sim.stats.log if e.project_id == project}
            for project in (P1, P2)
        }
    assert 0 < own_p2 < run_p2  # the project's own query reads less: a real difference
    assert answered == {P1: {run_p1}, P2: {own_p2}}
    assert len(read_rows(lake, f"project_id = '{P1}'")) == run_p1
    assert len(read_rows(lake, f"project_id = '{P2}'")) == own_p2
    report = json.loads(report_path.read_text())
    assert report["query"] == {"enterprise_project_id": "all_granted_eps", "has_vul": True}
    assert report["projects"][P1]["query"] is None
    assert report["projects"][P2]["query"] == own
    assert f"{P2}: published" in again.stderr and "its own query: enterprise_project_id=0" in (
        again.stderr
    )
    [p2_file] = lake.glob(f"project_id={P2}/*/data.parquet")
    stamp = Stamp.from_metadata(pq.read_metadata(p2_file).metadata)
    assert stamp is not None and stamp.query == canonical_query(list(own.items()))
