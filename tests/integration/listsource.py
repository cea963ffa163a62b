"""An in-memory PageSource: the seam for testing paging logic without a network.

The list may change between requests (``mutate`` runs before each one), which is how the
drift properties are tested; the tests with the simulator do the same over real sockets. A
``Gateway`` makes the answers behave as a real gateway may, which the reference does not
promise otherwise: pages capped or cut short, ``total_num`` off, records out of order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from blockbuster import blockbuster_ctx

from connector import Auth, Config, FetchSettings, RunReport, Secret
from connector.job.pipeline import run_async
from connector.source.client import Page, PageRequest


def record(n: int) -> dict[str, Any]:
    return {
        "image_id": f"img-{n:07d}",
        "image_name": f"app-{n % 97}",
        "image_version": f"v{n % 5}",
        "image_digest": f"sha256:{n:064x}",
        "scan_status": "success",
        "image_size": 2**33 + n,
        "latest_update_time": 1_700_000_000_000 + n * 1000,
        "vul_num": n % 7,
        "host_id": "h",
        "agent_id": "a",
    }


@dataclass(frozen=True)
class Gateway:
    """How answers depart from the list; each rate is a probability per request."""

    seed: int = 0
    cap: int | None = None
    short_rate: float = 0.0
    empty_rate: float = 0.0
    swap_rate: float = 0.0
    total_skew: int = 0
    total_jitter: int = 0
    short_at_total: int = 0
    """The first N answers that reach past the reported total_num end exactly at it."""
    serve_until: int | None = None
    """Records at this position and beyond are never served (total_num unaffected)."""


class ListSource:
    def __init__(
        self,
        items: list[Any],
        mutate: Callable[[list[Any], int], None] | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        self.items = items
        self.mutate = mutate
        self.gateway = gateway or Gateway()
        self.rng = random.Random(self.gateway.seed)
        self.requests: list[PageRequest] = []
        self.altered: dict[str, int] = {}

    def _alter(self, what: str) -> None:
        self.altered[what] = self.altered.get(what, 0) + 1

    async def get_page(self, request: PageRequest) -> Page:
        if self.mutate is not None:
            self.mutate(self.items, len(self.requests))
        self.requests.append(request)
        items = self.items
        params = dict(request.params)
        if "start_latest_update_time" in params:
            lo, hi = int(params["start_latest_update_time"]), int(params["end_latest_update_time"])
            items = [r for r in items if lo <= r.get("latest_update_time", lo - 1) <= hi]
        gateway, rng = self.gateway, self.rng
        served = min(request.limit, gateway.cap or request.limit)
        start = request.offset
        total = len(items) + gateway.total_skew
        if gateway.total_jitter:
            total += rng.randint(-gateway.total_jitter, gateway.total_jitter)
        stop = start + served
        if gateway.serve_until is not None:
            stop = min(stop, max(start, gateway.serve_until))
        if gateway.short_at_total and start < total < min(stop, len(items)):
            stop = total
            self._alter("short at total")
            self.gateway = replace(gateway, short_at_total=gateway.short_at_total - 1)
        chunk = items[start:stop]
        end = start + len(chunk)
        swap = gateway.swap_rate and len(chunk) >= 2 and end < len(items)
        if swap and rng.random() < gateway.swap_rate:  # as if records end-2 and end swapped
            chunk = [*chunk[:-2], items[end], chunk[-1]]
            self._alter("swap")
        if gateway.short_rate and len(chunk) >= 2 and rng.random() < gateway.short_rate:
            chunk = chunk[: rng.randrange(1, len(chunk))]
            self._alter("short")
        elif gateway.empty_rate and chunk and rng.random() < gateway.empty_rate:
            chunk = []
            self._alter("empty")
        copies = [dict(r) if isinstance(r, dict) else r for r in chunk]
        return Page(request, max(total, 0), copies, "req", time.time_ns() // 10**6)


def list_config(out: Path, **fetch: Any) -> Config:
    """One project read from a ListSource: no rate limit, small pages by default."""
    settings = FetchSettings(rate=0, **{"page_size": 10, "concurrency": 4, **fetch})
    return Config(
        projects=("p1",),
        endpoint="http://127.0.0.1:1",
        out=str(out),
        auth=Auth(token=Secret("unused")),
        fetch=settings,
        progress="off",
    )


async def _nosleep(_: float) -> None:
    await asyncio.sleep(0)


def sync_list(config: Config, source: ListSource) -> RunReport:
    """The pipeline over ``source``; a blocking call on the event loop fails the test."""

    async def guarded() -> RunReport:
        with blockbuster_ctx(["connector"]):
            return await run_async(config, source=source, sleep=_nosleep)

    return asyncio.run(guarded())
