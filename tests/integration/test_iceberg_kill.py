"""SIGKILL during the Iceberg commit: the table is at the old snapshot or the new one.

A child process stages two projects' data files, says so, and commits; the parent kills
it after delays from nothing to well past the commit's end (a commit takes about 0.05 s). After each
kill the table loads and holds exactly one run's rows for both projects: the commit is the
catalog's one update of the table's metadata pointer, so there is nothing in between.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyiceberg.catalog.sql")

from pyiceberg.catalog.sql import SqlCatalog

from connector.lake.iceberg import embedded_properties

pytestmark = pytest.mark.process

DELAYS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.045, 0.06, 0.08, 0.12, 0.2, 0.5)
"""Seconds from "commit" to SIGKILL: before, inside and after the commit."""
PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")

CHILD = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
from connector import Auth, Config, Secret
from connector.lake.iceberg import open_table
from connector.lake.layout import Stamp
from connector.shape.schema import file_schema

out, run_id, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
projects = sys.argv[4:]
config = Config(projects=tuple(projects), endpoint="https://127.0.0.1", out=out,
                auth=Auth(token=Secret("t" * 20)), format="iceberg", run_id=run_id)
query = '{"enterprise_project_id":"all_granted_eps"}'
table = open_table(config, Stamp(run_id, datetime.now(UTC), query))
now = datetime.now(UTC)
for project in projects:
    staged = Path(out).parent / f"{run_id}-{project}.parquet"
    data = [{"image_id": f"{run_id}-{n}", "ingested_at": now, "run_id": run_id} for n in range(rows)]
    pq.write_table(pa.Table.from_pylist(data, schema=file_schema()), staged)
    table.stage(project, staged, query, lambda: [])
print("commit", flush=True)
started = time.monotonic()
done = table.commit()
print("done", done.snapshot_id, round(time.monotonic() - started, 4), flush=True)
"""


def _child(out: Path, run_id: str, rows: int = 200) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), run_id, str(rows), *PROJECTS],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _runs(out: Path) -> Counter[tuple[str, str]]:
    table = SqlCatalog("hss", **embedded_properties(str(out))).load_table("hss.image_local_info")
    rows: list[dict[str, Any]] = (
        table.scan().to_arrow().select(["project_id", "run_id"]).to_pylist()
    )
    return Counter((r["project_id"], r["run_id"]) for r in rows)


def test_a_sigkill_during_the_commit_leaves_the_old_snapshot_or_the_new(tmp_path: Path) -> None:
    out = tmp_path / "table"
    out.mkdir()
    first = _child(out, "base")
    stdout, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and "done" in stdout
    commit_s = float(stdout.split()[-1])
    both = {(p, "base"): 200 for p in PROJECTS}
    assert _runs(out) == both
    outcomes = Counter[str]()
    for attempt, delay in enumerate(DELAYS):
        run_id = f"kill{attempt}"
        child = _child(out, run_id)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "commit"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        runs = _runs(out)
        new = {(p, run_id): 200 for p in PROJECTS}
        assert runs in (both, new), runs  # one run's rows for both projects, never a mix
        outcomes["new" if runs == new else "old"] += 1
        both = runs
    # the kills landed before the commit point and after it (one commit takes ~0.05 s)
    assert outcomes["old"] >= 1 and outcomes["new"] >= 1, (dict(outcomes), commit_s)
