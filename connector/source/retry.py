"""Retry as a policy: which failures, how long to wait, when to give up.

Bounded by attempts and by total time; throttling waits at least the server's
``Retry-After``, else the provider's advised 2 to 5 s, at its short end (``delay_for``);
other transient failures back off exponentially with jitter. ``sleep`` and ``clock`` are
injectable so tests do not wait.

The time budget (``max_elapsed_s``, ``--max-retry-time``) is a deadline for the page, not
only a limit on waiting: while ``retrying`` runs, ``budget_left()`` tells the client how
much of it remains, and the client cuts an attempt off at the deadline. So a page never
takes longer than its budget, however slowly the server answers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from connector.errors import ConnectorError, ThrottledError
from connector.settings.config import RetryPolicy
from connector.settings.names import setting

__all__ = ["Budget", "budget_left", "delay_for", "is_retryable", "retrying"]

T = TypeVar("T")

THROTTLE_SPREAD = 1.25
"""A throttled page waits between ``throttle_delay_s`` and this many times it (first retry)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """The retry budget of the page being fetched: a deadline on ``clock``."""

    seconds: float
    deadline: float
    clock: Callable[[], float]

    def left(self) -> float:
        return self.deadline - self.clock()


_budget: ContextVar[Budget | None] = ContextVar("hss_retry_budget", default=None)


def budget_left() -> Budget | None:
    """The budget of the page this task is fetching (``None`` outside ``retrying``)."""
    return _budget.get()


def is_retryable(error: ConnectorError) -> bool:
    return bool(getattr(error, "retryable", False))


def delay_for(
    policy: RetryPolicy, attempt: int, error: ConnectorError, rng: random.Random
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (attempts count from 1)."""
    if isinstance(error, ThrottledError):
        # Every attempt takes its turn at the limiter, which has just slowed down for this
        # 429, so a wide spread adds nothing but time; and the last pages' retries end the
        # run. The provider's 2 to 5 s therefore at its short end: 2 to 2.5 s, then 4 to 5.
        floor = policy.throttle_delay_s * min(2 ** (attempt - 1), 8)
        jittered = rng.uniform(floor, floor * THROTTLE_SPREAD)
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
    token = _budget.set(Budget(policy.max_elapsed_s, started + policy.max_elapsed_s, now))
    try:
        attempt = 1
        while True:
            try:
                return await call()
            except ConnectorError as error:
                if not is_retryable(error) or attempt >= policy.max_attempts:
                    _give_up(error, attempt)
                    raise
                wait = delay_for(policy, attempt, error, rng)
                left = policy.max_elapsed_s - (now() - started)
                if wait > left:
                    _give_up(error, attempt, _why_no_retry(error, policy, left))
                    raise
                if on_retry is not None:
                    on_retry(error, attempt, wait)
                await sleep(wait)
                attempt += 1
    finally:
        _budget.reset(token)


def _why_no_retry(error: ConnectorError, policy: RetryPolicy, left: float) -> str:
    """Why the budget stopped the retries, naming the setting (and what the server said)."""
    budget = f"{setting('max_retry_time')} {policy.max_elapsed_s:g}s"
    asked = getattr(error, "retry_after", None)
    if asked is not None and asked > left:
        return (
            f"not retried: the server asked to wait {asked:g}s (Retry-After), more than the "
            f"{max(left, 0.0):.0f}s left of {budget}; raise {setting('max_retry_time')} to wait "
            "that long"
        )
    return f"not retried: {budget} is spent"


def _give_up(error: ConnectorError, attempts: int, why: str | None = None) -> None:
    """Put the attempts, and why retrying stopped, into the error's message (and args)."""
    if not hasattr(error, "attempts"):
        return
    if why:
        error.args = (f"{error.args[0]}; {why}",)
    error.attempts = attempts
    error.message = error._format(error.args[0])  # type: ignore[attr-defined]
