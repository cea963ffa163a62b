"""Shared pieces of the integration tests: run a sync against a served simulator, read back."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
from blockbuster import blockbuster_ctx

from connector import Auth, Config, FetchSettings, RetryPolicy, RunReport, Secret
from connector.job.pipeline import run_async
from connector.shape.schema import load_spec

TOKEN = "test-token-0123456789abcdef"
EVERY_EP = {"enterprise_project_id": "all_granted_eps"}
"""What the connector reads by default: every enterprise project (the simulator's inventory
methods, like the API, default to enterprise project "0")."""
FAST_RETRY = RetryPolicy(
    max_attempts=10, base_delay_s=0.01, max_delay_s=0.05, throttle_delay_s=0.02
)
TIME_FIELDS = [f.name for f in load_spec().api_fields if f.type.startswith("timestamp")]
API_FIELDS = [f.name for f in load_spec().api_fields]


def config(base_url: str, out: Path, projects: tuple[str, ...] = ("p1",), **kw: Any) -> Config:
    fetch = kw.pop("fetch", FetchSettings(rate=0, concurrency=6, retry=FAST_RETRY))
    return Config(
        projects=projects,
        endpoint=base_url,
        out=str(out),
        auth=kw.pop("auth", Auth(token=Secret(TOKEN))),
        fetch=fetch,
        progress="off",
        **kw,
    )


def sync(cfg: Config) -> RunReport:
    """Run the pipeline; any blocking call on the event loop fails the test (blockbuster)."""

    async def guarded() -> RunReport:
        with blockbuster_ctx(["connector"]):
            return await run_async(cfg)

    return asyncio.run(guarded())


def with_fetch(cfg: Config, **changes: Any) -> Config:
    return replace(cfg, fetch=replace(cfg.fetch, **changes))


def read_rows(out: Path, where: str = "true") -> list[dict[str, Any]]:
    """Rows as a user reads them: DuckDB over the hive-partitioned glob; times as epoch ms."""
    select = ", ".join(
        f"epoch_ms({name}) as {name}" if name in TIME_FIELDS else name for name in API_FIELDS
    )
    relation = duckdb.sql(
        f"select {select}, extra_fields, project_id, snapshot_date, run_id "
        f"from read_parquet('{out}/**/*.parquet', hive_partitioning=true) where {where}"
    )
    names = [d[0] for d in relation.description]
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def as_api_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row back in the API's shape: only the fields the API sent."""
    return {k: v for k, v in row.items() if k in API_FIELDS and v is not None}


def served(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k in API_FIELDS and v is not None}
