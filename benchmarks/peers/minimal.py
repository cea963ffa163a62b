"""The least an aiohttp client can do: download and parse every page, keep nothing; or,
given an output folder, also write the same Parquet file the floor writes.

python -m benchmarks.peers.minimal BASE_URL PROJECT_ID CONCURRENCY [OUT_DIR SCHEMA ROW_GROUP]

Not a peer a user would run: a yardstick. It sends the same requests as the connector
(offset/limit pages of 200, ``concurrency`` in flight over one session) and parses each
body with orjson, but checks nothing and keeps nothing. Its wall time and CPU are what any
aiohttp + orjson client pays on this machine before it builds a single Arrow column, so
they bound from below what the connector's own figures can reach.

With OUT_DIR it also does the transform floor's work (``benchmarks/transform.py``): each
page's records become one ``pa.array`` of the API fields' struct (SCHEMA: those fields as a
serialized Arrow schema, so this program imports nothing of the connector), right on the
event loop (the cheapest place for CPU, whatever it does to the loop), and at the end one
zstd Parquet file in row groups of ROW_GROUP rows, as the connector writes. That is the
least CPU any aiohttp client pays to turn these pages into the file, measured in the same
conditions as the connector (the simulator answering on the other core, the same process
start), rather than added up from a single-threaded measurement. Prints the number of
records it read.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

PAGE_SIZE = 200


async def read_all(
    base_url: str,
    project_id: str,
    concurrency: int,
    token: str,
    keep: Callable[[list[Any]], None] | None = None,
) -> int:
    url = f"{base_url}/v5/{project_id}/image/local-repositories"
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"X-Auth-Token": token}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def page(offset: int) -> tuple[int, int]:
            query = f"enterprise_project_id=all_granted_eps&limit={PAGE_SIZE}&offset={offset}"
            async with session.get(f"{url}?{query}") as response:
                response.raise_for_status()
                body = await response.read()
            data = orjson.loads(body)
            if keep is not None:
                keep(data["data_list"])
            return data["total_num"], len(data["data_list"])

        total, records = await page(0)
        offsets = iter(range(PAGE_SIZE, total, PAGE_SIZE))

        async def worker() -> int:
            return sum([(await page(offset))[1] for offset in offsets])

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(worker()) for _ in range(concurrency)]
        return records + sum(task.result() for task in tasks)


def read_and_write(
    base_url: str,
    project_id: str,
    concurrency: int,
    token: str,
    out: Path,
    schema: Path,
    row_group: int,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    struct = pa.struct(list(pa.ipc.read_schema(pa.py_buffer(schema.read_bytes()))))
    batches: list[pa.RecordBatch] = []

    def keep(records: list[Any]) -> None:
        batches.append(pa.RecordBatch.from_struct_array(pa.array(records, struct)))

    records = asyncio.run(read_all(base_url, project_id, concurrency, token, keep))
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_batches(batches)
    pq.write_table(
        table, str(out / "minimal.parquet"), compression="zstd", row_group_size=row_group
    )
    return records


def main(argv: list[str]) -> int:
    base_url, project_id, concurrency, *write = argv
    token = os.environ["HSS_AUTH_TOKEN"]
    if write:
        out, schema, row_group = write
        count = read_and_write(
            base_url, project_id, int(concurrency), token, Path(out), Path(schema), int(row_group)
        )
        print(count)
    else:
        print(asyncio.run(read_all(base_url, project_id, int(concurrency), token)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
