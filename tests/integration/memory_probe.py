"""Run one project's sync in this fresh process and print its measured peak as JSON.

    python -m tests.integration.memory_probe BASE_URL OUT PROJECT CONCURRENCY

Python's allocations are traced (tracemalloc) and Arrow's come from its memory pool's
peak; a warm-up sync of a tiny project first loads every lazily imported module, so the
peak measured is the project's own.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from connector import Auth, Config, FetchSettings, Secret
from connector.job.pipeline import run

from .helpers import FAST_RETRY, TOKEN

WARM_UP = "warmup"


def main(base_url: str, out: str, project: str, concurrency: int) -> None:
    config = Config(
        projects=(WARM_UP,),
        endpoint=base_url,
        out=str(Path(out) / "warm-up"),
        auth=Auth(token=Secret(TOKEN)),
        fetch=FetchSettings(rate=0, concurrency=concurrency, retry=FAST_RETRY),
        progress="off",
    )
    tracemalloc.start()
    run(config)
    pool = pa.default_memory_pool()
    arrow_before = pool.max_memory()
    tracemalloc.reset_peak()
    python_before = tracemalloc.get_traced_memory()[0]
    report = run(replace(config, projects=(project,), out=out))
    python_peak = tracemalloc.get_traced_memory()[1] - python_before
    arrow_peak = max(pool.max_memory() - arrow_before, 0)
    print(
        json.dumps(
            {
                "status": report.status,
                "records": report.records_written,
                "estimate": report.projects[project].memory_estimate,
                "python_peak": python_peak,
                "arrow_peak": arrow_peak,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
