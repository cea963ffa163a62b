"""A naive sequential aiohttp loop: what a user writes in ten minutes.

python -m benchmarks.peers.naive BASE_URL PROJECT_ID[,PROJECT_ID...] OUT_DIR

Projects one after another, pages one after another; one Parquet file per project, under
``OUT_DIR/project_id=P/`` when there are several.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow as pa
import pyarrow.parquet as pq

PAGE_SIZE = 200


async def fetch_all(base_url: str, project_id: str, token: str) -> list[dict[str, Any]]:
    url = f"{base_url}/v5/{project_id}/image/local-repositories"
    records: list[dict[str, Any]] = []
    offset = 0
    async with aiohttp.ClientSession(headers={"X-Auth-Token": token}) as session:
        while True:
            params: dict[str, str | int] = {
                "offset": offset,
                "limit": PAGE_SIZE,
                "enterprise_project_id": "all_granted_eps",
            }
            async with session.get(url, params=params) as response:
                response.raise_for_status()
                data = await response.json()
            page = data.get("data_list") or []
            records.extend(page)
            offset += PAGE_SIZE
            if not page or offset >= data["total_num"]:
                return records


def main(argv: list[str]) -> int:
    base_url, project_ids, out = argv
    projects = project_ids.split(",")
    rows = 0
    for project_id in projects:
        records = asyncio.run(fetch_all(base_url, project_id, os.environ["HSS_AUTH_TOKEN"]))
        table = pa.Table.from_pylist(records)
        folder = Path(out) / f"project_id={project_id}" if len(projects) > 1 else Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, str(folder / "images.parquet"), compression="zstd")
        rows += table.num_rows
    print(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
