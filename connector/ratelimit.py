"""A token bucket that adapts when the gateway throttles anyway.

Rate and concurrency are separate knobs: this limits how often requests start; the worker
count limits how many are in flight. The bucket reads ``loop.time()`` (or an injected clock)
so tests control time.

Adaptation: a 429 means the configured rate is above the gateway's policy, so the rate is
cut by ``decrease`` (at most once per second, since the 429s of one burst arrive together)
and then grows back by ``recover_per_s`` of itself for every second without a 429, never
above the configured rate. Growth proportional to the current rate keeps a limiter that
was cut far below a wrong ``--rate`` close to the gateway's real limit, where it probes
slowly, instead of jumping back to the wrong rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        decrease: float = 0.5,
        min_rate: float = 0.2,
        recover_per_s: float = 0.1,
    ) -> None:
        self.ceiling = rate
        self.rate = rate
        self.burst = burst
        self.min_rate = min(min_rate, rate) if rate > 0 else 0.0
        self.decrease = decrease
        self.recover = recover_per_s
        self._grown: float | None = None
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated: float | None = None
        self._last_cut: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.ceiling <= 0

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait for a slot. Callers reserve in arrival order, so waiting is fair."""
        if self.unlimited:
            return
        now = self._now()
        self._refill(now)
        self._tokens -= 1.0
        if self._tokens >= 0:
            return
        wait = -self._tokens / self.rate
        try:
            await self._sleep(wait)
        except asyncio.CancelledError:
            self._tokens += 1.0
            raise

    def throttled(self) -> None:
        """The gateway said 429: slow down (once per second at most)."""
        if self.unlimited:
            return
        now = self._now()
        if self._last_cut is not None and now - self._last_cut < 1.0:
            return
        self._refill(now)
        self._last_cut = now
        self.rate = max(self.min_rate, self.rate * self.decrease)
        self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """A request got through: grow back towards the configured rate, with time."""
        if self.unlimited or self.rate >= self.ceiling:
            return
        now = self._now()
        since = now - max(self._grown or now, self._last_cut or now)
        self._grown = now
        if since > 0:
            self._refill(now)
            self.rate = min(self.ceiling, self.rate * (1 + self.recover * min(since, 1.0)))
