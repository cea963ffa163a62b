"""Progress: one live line on a terminal, a log line every few seconds elsewhere (Airflow).

    12,345 of ~60,000 records (20.6%), ETA 23s; 3 of 5 projects started; 61 pages,
    40.0 req/s, 2,100 records/s, 0 throttled, 6s

- **records** are counted where the report counts ``records_fetched``: the records handed on
  for storage, each record of the overlap chain once (every page repeats the last record of
  the page before it, to prove nothing moved; those repeats are not counted). At the end of
  a clean run the line's count is the report's.
- **of ~N** is the sum of ``total_num`` of the projects whose first page has been read: the
  API's hint, which lags behind a list that changes, hence the ``~``; projects not started
  yet are not in it. The percentage is capped at 100.
- **ETA** divides what is left of N by the recent rate (records per second over the last
  ``window_s`` seconds of samples), so a slow start or a throttled stretch ages out.

Nothing here reads the clock except through ``clock``, and the counters come from a
function, so tests drive both (``Progress.sample``) without waiting.

Why hand-written rather than tqdm or rich: the line must also be a plain log line every few
seconds in Airflow, where there is no terminal. tqdm writes carriage-return frames into a
non-terminal stream (they become one garbled line in a task log) and would need a second
path for logging; rich's live display takes over the terminal and needs its own logging
handler to share it. Both would be new dependencies for about one line of text that this
module writes in both places from the same numbers (``Snapshot``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

__all__ = ["Counts", "Progress", "Snapshot", "eta_seconds", "format_duration", "percent"]

log = logging.getLogger("connector")

WINDOW_S = 30.0
"""The recent rate is measured over about this many seconds of samples."""


@dataclass(frozen=True, slots=True)
class Counts:
    """The run's counters at one moment."""

    records: int
    """Records read, as the report counts them (``records_fetched``)."""
    total: int = 0
    """Sum of ``total_num`` of the projects whose first page has been read."""
    projects_started: int = 0
    projects: int = 0
    pages: int = 0
    requests: int = 0
    throttled: int = 0


def percent(records: int, total: int) -> float | None:
    """Share of ``total`` read, 0..100; ``None`` while no total is known."""
    if total <= 0:
        return None
    return min(100.0, 100.0 * records / total)


def eta_seconds(records: int, total: int, rate: float) -> float | None:
    """Seconds until ``total`` at ``rate`` records/s; ``None`` when it cannot be told."""
    if total <= 0:
        return None
    remaining = max(total - records, 0)
    if remaining == 0:
        return 0.0
    if rate <= 0:
        return None
    eta = remaining / rate
    return eta if math.isfinite(eta) else None


def format_duration(seconds: float) -> str:
    """``42s``, ``4m05s``, ``1h02m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters and what follows from them at one moment."""

    counts: Counts
    elapsed_s: float
    rate: float
    """Recent records per second."""
    requests_per_s: float

    @property
    def percent(self) -> float | None:
        return percent(self.counts.records, self.counts.total)

    @property
    def eta_s(self) -> float | None:
        return eta_seconds(self.counts.records, self.counts.total, self.rate)

    def line(self) -> str:
        c = self.counts
        done = f"{c.records:,} records"
        share = self.percent
        if share is not None:
            done = f"{c.records:,} of ~{c.total:,} records ({share:.1f}%)"
        eta = self.eta_s
        if eta is not None:
            done += f", ETA {format_duration(eta)}"
        return (
            f"{done}; {c.projects_started} of {c.projects} projects started; {c.pages:,} pages, "
            f"{self.requests_per_s:.1f} req/s, {self.rate:,.0f} records/s, "
            f"{c.throttled} throttled, {format_duration(self.elapsed_s)}"
        )

    def fields(self) -> dict[str, Any]:
        """The numbers, for structured logs (``--log-format json``)."""
        c = self.counts
        share, eta = self.percent, self.eta_s
        return {
            "records": c.records,
            "total": c.total,
            "percent": None if share is None else round(share, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "projects_started": c.projects_started,
            "projects": c.projects,
            "pages": c.pages,
            "requests": c.requests,
            "throttled": c.throttled,
            "records_per_s": round(self.rate, 1),
            "elapsed_s": round(self.elapsed_s, 1),
        }


class Progress:
    def __init__(
        self,
        counters: Callable[[], Counts],
        mode: Literal["auto", "bar", "log", "off"] = "auto",
        stream: TextIO | None = None,
        log_every_s: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = WINDOW_S,
    ) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.counters = counters
        self.log_every_s = log_every_s
        self.clock = clock
        self.window_s = window_s
        self.started = clock()
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def sample(self) -> Snapshot:
        """Read the counters now; the rate is over the samples of the last ``window_s``."""
        counts = self.counters()
        now = self.clock()
        samples = self._samples
        # keep one sample at or before the window's start, so the window spans window_s
        while len(samples) > 1 and samples[1][0] <= now - self.window_s:
            samples.popleft()
        since, records_then = samples[0]
        span = now - since
        rate = (counts.records - records_then) / span if span > 0 else 0.0
        samples.append((now, counts.records))
        elapsed = now - self.started
        requests_per_s = counts.requests / elapsed if elapsed > 0 else 0.0
        return Snapshot(counts, elapsed, max(rate, 0.0), requests_per_s)

    def line(self) -> str:
        return self.sample().line()

    def _log(self, snapshot: Snapshot, *, final: bool = False) -> None:
        label = "progress (final)" if final else "progress"
        log.info("%s: %s", label, snapshot.line(), extra={**snapshot.fields(), "final": final})

    async def run(self) -> None:
        """Show progress until cancelled (then ``finish``)."""
        if self.mode == "off":
            return
        interval = 0.25 if self.mode == "bar" else self.log_every_s
        try:
            while True:
                await asyncio.sleep(interval)
                snapshot = self.sample()
                if self.mode == "bar":
                    self.stream.write("\r\033[K" + snapshot.line())
                    self.stream.flush()
                else:
                    self._log(snapshot)
        except asyncio.CancelledError:
            if self.mode == "bar":
                self.stream.write("\r\033[K")
                self.stream.flush()
            raise

    def finish(self) -> Snapshot:
        """The final counts; in log mode also logged, as the last progress line."""
        snapshot = self.sample()
        if self.mode == "log":
            self._log(snapshot, final=True)
        return snapshot
