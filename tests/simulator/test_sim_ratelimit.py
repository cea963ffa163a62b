"""Throttling: token buckets (pure, explicit time) and HTTP 429 APIG.0308."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from sim_http import aget, get_many

from connector.simulator import SimulatorConfig, simulator_in_thread
from connector.simulator.ratelimit import RateLimiter, Throttled, TokenBucket


def test_bucket_burst_then_refill() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, now=100.0)
    taken = 0
    while bucket.ready(100.0):
        bucket.take()
        taken += 1
    assert taken == 3
    assert not bucket.ready(100.4)  # 0.8 token
    assert bucket.ready(100.5)
    bucket.take()
    assert not bucket.ready(100.5)
    assert bucket.ready(200.0) and bucket.tokens == 3  # capped at capacity


def test_limiter_per_second_per_identity() -> None:
    limiter = RateLimiter(rate=5, burst=2, per_minute=0)
    assert limiter.acquire("a", 0.0) is None
    assert limiter.acquire("a", 0.0) is None
    refused = limiter.acquire("a", 0.0)
    assert refused == Throttled(5, "second")
    assert refused.message == (
        "The throttling threshold has been reached: policy user over ratelimit,"
        "limit:5,time:1 second"
    )
    assert limiter.acquire("b", 0.0) is None  # another credential has its own bucket
    assert limiter.acquire("a", 0.2) is None  # one token back after 1/5 s


def test_limiter_per_minute_and_refusals_cost_nothing() -> None:
    limiter = RateLimiter(rate=100, burst=100, per_minute=3)
    assert [limiter.acquire("a", 0.0) for _ in range(3)] == [None] * 3
    refused = limiter.acquire("a", 0.0)
    assert refused is not None and refused.period == "minute"
    assert refused.message.endswith("limit:3,time:1 minute")
    for _ in range(50):  # refused requests take no per-second tokens either
        assert limiter.acquire("a", 0.0) is not None
    assert limiter.acquire("a", 20.0) is None  # 20 s = one per-minute token
    assert limiter.acquire("a", 20.0) is not None


def test_limiter_off() -> None:
    limiter = RateLimiter(rate=0, burst=1, per_minute=0)
    assert not limiter.enabled


def test_http_429_with_retry_after_and_recovery() -> None:
    config = SimulatorConfig(
        records=30, tokens=frozenset({"a", "b"}), rate=4, burst=2, retry_after=3
    )
    with simulator_in_thread(config) as sim:
        url = sim.url("p")

        async def main() -> None:
            async with aiohttp.ClientSession() as session:
                first = [await aget(session, url, headers={"X-Auth-Token": "a"}) for _ in range(3)]
                assert [r.status for r in first] == [200, 200, 429]
                throttled = first[2]
                body = throttled.json()
                assert body["error_code"] == "APIG.0308"
                assert body["error_msg"].endswith("ratelimit,limit:4,time:1 second")
                assert body["request_id"] == throttled.headers["X-Request-Id"]
                assert throttled.headers["Retry-After"] == "3"
                other = await aget(session, url, headers={"X-Auth-Token": "b"})
                assert other.status == 200
                await asyncio.sleep(0.3)  # > 1/4 s: one token back
                again = await aget(session, url, headers={"X-Auth-Token": "a"})
                assert again.status == 200

        asyncio.run(main())
        assert sim.stats.throttled == 1
        assert sim.stats.project("p").statuses[429] == 1


def test_http_429_without_retry_after_and_per_minute() -> None:
    config = SimulatorConfig(records=30, rate_per_minute=2)
    with simulator_in_thread(config) as sim:
        started = time.monotonic()
        replies = get_many(sim.url("p"), [{}, {}, {}])
        assert time.monotonic() - started < 5
        assert [r.status for r in replies] == [200, 200, 429]
        assert "Retry-After" not in replies[2].headers
        assert replies[2].json()["error_msg"].endswith("limit:2,time:1 minute")
