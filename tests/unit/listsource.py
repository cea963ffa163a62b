"""An in-memory PageSource: the seam for testing paging logic without a network.

The list may change between requests (``mutate`` runs before each one), which is how the
drift properties are tested; the integration tests do the same over real sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from connector.client import Page, PageRequest


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


class ListSource:
    def __init__(
        self,
        items: list[dict[str, Any]],
        mutate: Callable[[list[dict[str, Any]], int], None] | None = None,
    ) -> None:
        self.items = items
        self.mutate = mutate
        self.requests: list[PageRequest] = []

    async def get_page(self, request: PageRequest) -> Page:
        if self.mutate is not None:
            self.mutate(self.items, len(self.requests))
        self.requests.append(request)
        items = self.items
        params = dict(request.params)
        if "start_latest_update_time" in params:
            lo, hi = int(params["start_latest_update_time"]), int(params["end_latest_update_time"])
            items = [r for r in items if lo <= r["latest_update_time"] <= hi]
        chunk = items[request.offset : request.offset + request.limit]
        copies = [dict(r) if isinstance(r, dict) else r for r in chunk]
        return Page(request, len(items), copies, "req", time.time_ns() // 10**6)
