"""The rate limiter and the retry policy, on a controlled clock."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector import RetryPolicy, ServerError, ThrottledError
from connector.errors import AuthError, ConnectorError
from connector.ratelimit import RateLimiter
from connector.retry import delay_for, retrying


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@given(rate=st.floats(0.5, 500), burst=st.integers(1, 20), n=st.integers(1, 200))
def test_token_bucket_never_exceeds_rate_and_burst(rate: float, burst: int, n: int) -> None:
    clock = Clock()
    limiter = RateLimiter(rate, burst, clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        starts = []
        for _ in range(n):
            await limiter.acquire()
            starts.append(clock.now)
        return starts

    starts = asyncio.run(go())
    # in any window of length t at most burst + rate * t requests start
    for i, start in enumerate(starts):
        for j in range(i, len(starts)):
            assert j - i + 1 <= burst + rate * (starts[j] - start) + 1e-6
    assert starts[-1] == pytest.approx(max(0.0, (n - burst) / rate), rel=1e-6, abs=1e-9)


def test_throttling_halves_the_rate_then_recovers() -> None:
    clock = Clock()
    limiter = RateLimiter(40, 1, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    assert limiter.rate == 20
    limiter.throttled()  # the same burst of 429s: cut once per second at most
    assert limiter.rate == 20
    clock.now += 1.5
    limiter.throttled()
    assert limiter.rate == 10
    limiter.succeeded()
    assert limiter.rate == 10  # no time has passed since the cut
    for _ in range(5):
        clock.now += 1.0
        limiter.succeeded()
    assert 10 * 1.1**5 * 0.99 < limiter.rate < 10 * 1.1**5 * 1.01  # +10% a second
    for _ in range(60):
        clock.now += 1.0
        limiter.succeeded()
    assert limiter.rate == 40  # never above the configured rate


def test_retry_delays_honour_retry_after_and_back_off() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=30, throttle_delay_s=2)
    rng = random.Random(1)
    throttled = ThrottledError("t")
    throttled.retry_after = 7.0
    assert delay_for(policy, 1, throttled, rng) >= 7.0
    plain = ThrottledError("t")
    assert 2 <= delay_for(policy, 1, plain, rng) <= 5
    server = ServerError("s")
    delays = [delay_for(policy, n, server, rng) for n in range(1, 10)]
    assert all(
        0.5 * min(30, 2 ** (n - 1)) <= d <= min(30, 2 ** (n - 1)) for n, d in enumerate(delays, 1)
    )


def test_retrying_is_bounded_and_does_not_retry_what_cannot_succeed() -> None:
    clock = Clock()
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ServerError("boom", project_id="p", offset=0, status=503)

    async def denied() -> None:
        nonlocal calls
        calls += 1
        raise AuthError("no", status=401)

    policy = RetryPolicy(max_attempts=4, base_delay_s=0.1)
    with pytest.raises(ServerError) as info:
        asyncio.run(retrying(failing, policy, sleep=clock.sleep, clock=clock))
    assert calls == 4 and info.value.attempts == 4 and "after 4 attempts" in str(info.value)
    calls = 0
    with pytest.raises(AuthError):
        asyncio.run(retrying(denied, policy, sleep=clock.sleep, clock=clock))
    assert calls == 1
    calls = 0
    short = RetryPolicy(max_attempts=100, max_elapsed_s=1.0, base_delay_s=0.3)
    with pytest.raises(ConnectorError):
        asyncio.run(retrying(failing, short, sleep=clock.sleep, clock=clock))
    assert 1 < calls < 100
