"""The transform alone, against its floor, on the same response bodies (no network).

    python -m benchmarks.transform BASE_URL PROJECT_ID RECORDS [--reps N]

Fetches the project's bodies once (untimed), then times, as CPU per record:

    orjson     ``orjson.loads`` of every body: the floor of parsing
    floor      orjson + ``pa.array(data_list, <struct of the schema>)`` + the same zstd
               Parquet writer settings: the least work that turns these bodies into the
               file, with no validation, no lineage columns, no accounting
    connector  the connector's own path: the client's page parser (typed records when the
               body fits the schema, ``decoding.py``; else plain values), ``ProjectSink``
               (the checks, Arrow conversion, lineage) in chunks of
               ``pipeline.CHUNK_RECORDS``, and ``ProjectWriter`` staging and closing the file

Prints one JSON object: per variant the median CPU and wall seconds over the repetitions,
which take the variants in turn (after one unmeasured round).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from connector.job import pipeline
from connector.lake import writer
from connector.shape.batches import BatchBuilder
from connector.shape.page import PageRecords
from connector.shape.records import RecordChecker
from connector.shape.schema import file_schema, load_spec
from connector.shape.sink import ProjectSink
from connector.source import client as connector_client
from connector.source.decoding import PageDecoder

PAGE_SIZE = 200
TOKEN_HEADER = "X-Auth-Token"


def fetch_bodies(base_url: str, project_id: str, records: int, token: str) -> list[bytes]:
    """Every page of the project, without overlap, as the raw bytes the server sent."""
    url = f"{base_url}/v5/{project_id}/image/local-repositories"

    def get(offset: int) -> bytes:
        query = f"offset={offset}&limit={PAGE_SIZE}&enterprise_project_id=all_granted_eps"
        request = urllib.request.Request(f"{url}?{query}", headers={TOKEN_HEADER: token})
        with urllib.request.urlopen(request, timeout=60) as response:
            body: bytes = response.read()
            return body

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(get, range(0, records, PAGE_SIZE)))


def _floor(bodies: list[bytes], out: Path) -> int:
    schema = file_schema()
    spec = load_spec()
    struct = pa.struct([schema.field(f.name) for f in spec.api_fields])
    batches = [
        pa.RecordBatch.from_struct_array(pa.array(orjson.loads(body)["data_list"], struct))
        for body in bodies
    ]
    table = pa.Table.from_batches(batches)
    pq.write_table(
        table, str(out / "floor.parquet"), compression="zstd", row_group_size=writer.ROW_GROUP_ROWS
    )
    rows: int = table.num_rows
    return rows


def _connector(bodies: list[bytes], out: Path) -> int:
    spec, schema = load_spec(), file_schema()
    output = writer.Output(str(out / "lake"), "bench")  # its own files go beside, in out
    project = output.project("bench", date(2026, 1, 1), schema)
    sink = ProjectSink(
        project, BatchBuilder(spec, schema), RecordChecker(spec), project_id="bench", run_id="bench"
    )
    decoder = PageDecoder(spec)
    pending: list[PageRecords] = []
    size = 0
    for index, body in enumerate(bodies):
        request = connector_client.PageRequest("bench", index * PAGE_SIZE, PAGE_SIZE)
        page = connector_client.parse_page(request, body, "req", "application/json", decoder)
        pending.append(page.hand_off(0, page.records))
        size += len(page.records)
        if size >= pipeline.CHUNK_RECORDS:
            sink.write(pending)
            pending, size = [], 0
    if pending:
        sink.write(pending)
    staged = project.finish(None)
    project.abort()
    output.close()
    return staged.rows


def _orjson(bodies: list[bytes], out: Path) -> int:
    return sum(len(orjson.loads(body)["data_list"]) for body in bodies)


VARIANTS: dict[str, Callable[[list[bytes], Path], int]] = {
    "orjson": _orjson,
    "floor": _floor,
    "connector": _connector,
}


def time_variants(bodies: list[bytes], reps: int) -> dict[str, dict[str, float]]:
    """Round-robin: each repetition runs every variant once, so a slow minute of the machine
    slows all of them, not the one that happened to run then; one unmeasured round first."""
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rows: dict[str, int] = {}
    for rep in range(reps + 1):
        for name, variant in VARIANTS.items():
            out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            try:
                wall_0, cpu_0 = time.perf_counter(), time.process_time()
                rows[name] = variant(bodies, out)
                if rep:  # the first round warms caches and lazy imports
                    cpu[name].append(time.process_time() - cpu_0)
                    wall[name].append(time.perf_counter() - wall_0)
            finally:
                shutil.rmtree(out, ignore_errors=True)
    return {
        name: {
            "cpu_s": statistics.median(cpu[name]),
            "wall_s": statistics.median(wall[name]),
            "rows": rows[name],
        }
        for name in VARIANTS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transform")
    parser.add_argument("base_url")
    parser.add_argument("project_id")
    parser.add_argument("records", type=int)
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    bodies = fetch_bodies(args.base_url, args.project_id, args.records, args.token)
    results = time_variants(bodies, args.reps)
    results["bodies"] = {"count": len(bodies), "bytes": sum(map(len, bodies))}
    sys.stdout.write(orjson.dumps(results).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
