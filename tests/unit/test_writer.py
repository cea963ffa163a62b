"""The writer on its own: stamps, errors that name the path, and aborting under a worker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from connector.errors import ConfigError, OutputError
from connector.lake.writer import Output
from connector.shape.schema import file_schema

# Aborting (after another project failed, or on Ctrl-C) while finish() still writes the
# staged file in a worker thread closed that ParquetWriter under it: exit 134 or 139.
ABORT_UNDER_FINISH = """
import sys, threading, time
import pyarrow as pa
from datetime import date
from connector.shape.schema import file_schema
from connector.lake.writer import Output

schema = file_schema()
rows = 60_000
columns = []
for f in schema:
    if pa.types.is_string(f.type):
        columns.append(pa.array([f"{f.name}-{i}" for i in range(rows)], f.type))
    else:
        columns.append(pa.array(range(rows), pa.int64()).cast(f.type))
batch = pa.RecordBatch.from_arrays(columns, schema=schema)
for trial in range(5):
    output = Output(sys.argv[1], f"run{trial}")
    writer = output.project("p1", date(2026, 11, 27), schema)
    writer.write(batch)
    worker = threading.Thread(target=writer.finish, args=(None,))
    worker.start()
    time.sleep(0.01)
    writer.abort()
    worker.join()
    output.close()
    assert not writer.staged_data.exists()
print("survived")
"""


def test_abort_waits_for_a_step_running_in_a_worker_thread(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ABORT_UNDER_FINISH), str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "survived"), done.stderr[-2000:]


def test_every_data_file_carries_the_run_and_the_query(tmp_path: Path) -> None:
    query = [("scan_status", "success"), ("enterprise_project_id", "0")]
    output = Output(str(tmp_path / "lake"), "run-1", query=query)
    writer = output.project("p1", date(2026, 11, 27), file_schema())
    writer.finish(None)
    published = writer.publish()
    output.close()
    [path] = published.files
    metadata = pq.read_metadata(path).metadata
    assert metadata[b"hss.run_id"] == b"run-1"
    assert orjson.loads(metadata[b"hss.query"]) == dict(query)
    assert metadata[b"hss.run_started_at"].decode() == output.stamp.started_at.isoformat()
    assert b"record" in metadata  # the schema's own metadata is kept


def test_a_failing_filesystem_is_an_output_error_naming_the_path(tmp_path: Path) -> None:
    output = Output(str(tmp_path / "lake"), "run-1")
    writer = output.project("p1", date(2026, 11, 27), file_schema())
    writer.staged_quarantine.mkdir()  # the quarantine file cannot be opened
    with pytest.raises(OutputError, match=rf"project p1: writing {writer.staged_quarantine}"):
        writer.quarantine([{"record": {}}])
    with pytest.raises(OutputError, match="already failed"):
        writer.finish(None)
    writer.abort()
    output.close()


def test_output_refuses_a_root_and_a_bucket_without_a_prefix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="root of its filesystem or bucket"):
        Output("/", "run-1")
    with pytest.raises(ConfigError, match="root of its filesystem or bucket"):
        Output("memory://lake", "run-1")
