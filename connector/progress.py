"""Progress: one live line on a terminal, a log line every few seconds elsewhere (Airflow)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO

__all__ = ["Progress"]

log = logging.getLogger("connector")


class Progress:
    def __init__(
        self,
        counters: Callable[[], tuple[int, int, int, int]],
        mode: Literal["auto", "bar", "log", "off"] = "auto",
        stream: TextIO | None = None,
        log_every_s: float = 10.0,
    ) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.counters = counters
        self.log_every_s = log_every_s
        self.started = time.monotonic()

    def line(self) -> str:
        pages, records, requests, throttled = self.counters()
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{pages} pages, {records} records, {requests / elapsed:.1f} req/s, "
            f"{records / elapsed:.0f} records/s, {throttled} throttled, {elapsed:.0f}s"
        )

    async def run(self) -> None:
        if self.mode == "off":
            return
        interval = 0.25 if self.mode == "bar" else self.log_every_s
        try:
            while True:
                await asyncio.sleep(interval)
                if self.mode == "bar":
                    self.stream.write("\r\033[K" + self.line())
                    self.stream.flush()
                else:
                    log.info("progress: %s", self.line())
        except asyncio.CancelledError:
            if self.mode == "bar":
                self.stream.write("\r\033[K")
                self.stream.flush()
            raise
