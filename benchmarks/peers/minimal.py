"""The least an aiohttp client can do: download and parse every page, keep nothing.

python -m benchmarks.peers.minimal BASE_URL PROJECT_ID CONCURRENCY

Not a peer a user would run: a yardstick. It sends the same requests as the connector
(offset/limit pages of 200, ``concurrency`` in flight over one session) and parses each
body with orjson, but checks nothing, converts nothing and writes nothing. Its wall time and
CPU are what any aiohttp + orjson client pays on this machine before it builds a single
Arrow column, so they bound from below what the connector's own figures can reach.
Prints the number of records it read.
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
import orjson

PAGE_SIZE = 200


async def read_all(base_url: str, project_id: str, concurrency: int, token: str) -> int:
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
            return data["total_num"], len(data["data_list"])

        total, records = await page(0)
        offsets = iter(range(PAGE_SIZE, total, PAGE_SIZE))

        async def worker() -> int:
            return sum([(await page(offset))[1] for offset in offsets])

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(worker()) for _ in range(concurrency)]
        return records + sum(task.result() for task in tasks)


def main(argv: list[str]) -> int:
    base_url, project_id, concurrency = argv
    token = os.environ["HSS_AUTH_TOKEN"]
    print(asyncio.run(read_all(base_url, project_id, int(concurrency), token)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
