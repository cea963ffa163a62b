"""Per-credential token buckets: per second with a burst, and optionally per minute.

Pure: every call takes ``now`` (the server passes ``loop.time()``), so tests drive time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["RateLimiter", "Throttled", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Throttled:
    """Which policy refused a request."""

    limit: float
    period: Literal["second", "minute"]

    @property
    def message(self) -> str:
        return (
            "The throttling threshold has been reached: policy user over ratelimit,"
            f"limit:{self.limit:g},time:1 {self.period}"
        )


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; one request takes one token."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def ready(self, now: float) -> bool:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        return self.tokens >= 1.0

    def take(self) -> None:
        self.tokens -= 1.0


class RateLimiter:
    """Buckets per identity; a refused request consumes nothing."""

    def __init__(self, rate: float, burst: int, per_minute: int) -> None:
        self._rate = rate
        self._burst = burst
        self._per_minute = per_minute
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}

    @property
    def enabled(self) -> bool:
        return self._rate > 0 or self._per_minute > 0

    def acquire(self, identity: str, now: float) -> Throttled | None:
        """Take a token for ``identity`` at time ``now``, or say which limit refused it."""
        buckets = self._buckets.get(identity)
        if buckets is None:
            second = TokenBucket(self._rate, self._burst, now) if self._rate > 0 else None
            minute = (
                TokenBucket(self._per_minute / 60.0, self._per_minute, now)
                if self._per_minute > 0
                else None
            )
            buckets = self._buckets[identity] = (second, minute)
        second, minute = buckets
        if second is not None and not second.ready(now):
            return Throttled(self._rate, "second")
        if minute is not None and not minute.ready(now):
            return Throttled(self._per_minute, "minute")
        if second is not None:
            second.take()
        if minute is not None:
            minute.take()
        return None
