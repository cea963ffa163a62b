"""Retry as a policy: which failures, how long to wait, when to give up.

Bounded by attempts and by total time; throttling waits at least the server's
``Retry-After`` (or the provider's advised 2 to 5 s); other transient failures back off
exponentially with jitter. ``sleep`` and ``clock`` are injectable so tests do not wait.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .config import RetryPolicy
from .errors import ConnectorError, ThrottledError

__all__ = ["delay_for", "is_retryable", "retrying"]

T = TypeVar("T")


def is_retryable(error: ConnectorError) -> bool:
    return bool(getattr(error, "retryable", False))


def delay_for(
    policy: RetryPolicy, attempt: int, error: ConnectorError, rng: random.Random
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (attempts count from 1)."""
    if isinstance(error, ThrottledError):
        floor = policy.throttle_delay_s * min(2 ** (attempt - 1), 8)
        jittered = rng.uniform(floor, floor * 2.5)
        advised = error.retry_after if error.retry_after is not None else 0.0
        return min(max(jittered, advised), max(policy.max_delay_s, advised))
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2 ** (attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[ConnectorError, int, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run ``call`` until it succeeds, fails for good, or the policy's budget is spent."""
    now = clock or asyncio.get_running_loop().time
    rng = rng or random.Random()
    started = now()
    attempt = 1
    while True:
        try:
            return await call()
        except ConnectorError as error:
            if not is_retryable(error) or attempt >= policy.max_attempts:
                _set_attempts(error, attempt)
                raise
            wait = delay_for(policy, attempt, error, rng)
            if now() - started + wait > policy.max_elapsed_s:
                _set_attempts(error, attempt)
                raise
            if on_retry is not None:
                on_retry(error, attempt, wait)
            await sleep(wait)
            attempt += 1


def _set_attempts(error: ConnectorError, attempts: int) -> None:
    if hasattr(error, "attempts"):
        error.attempts = attempts
        error.message = error._format(error.args[0])  # type: ignore[attr-defined]
