"""The rate limiter and the retry policy, on a controlled clock."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import RetryPolicy, ServerError, ThrottledError
from connector.errors import AuthError, ConnectorError
from connector.source.limiter import STATED_BURST, STATED_MARGIN, RateLimiter
from connector.source.retry import delay_for, retrying


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@given(
    rate=st.floats(0.5, 500),
    burst=st.one_of(st.integers(1, 20), st.floats(1, 20)),
    n=st.integers(1, 200),
)
def test_token_bucket_never_exceeds_rate_and_burst(rate: float, burst: float, n: int) -> None:
    clock = Clock()
    limiter = RateLimiter(rate, burst, clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        starts = []
        for _ in range(n):
            async with limiter.request():
                starts.append(clock.now)
        return starts

    starts = asyncio.run(go())
    _assert_within(starts, rate, burst)
    # and no slower than that: the bucket paces, it does not lose time
    assert starts[-1] == pytest.approx(max(0.0, (n - burst) / rate), rel=1e-6, abs=1e-9)


@given(rate=st.floats(1, 200), late=st.floats(0, 0.99), n=st.integers(2, 300))
def test_a_bucket_above_one_makes_up_for_late_wake_ups(rate: float, late: float, n: int) -> None:
    """Every wake-up comes ``late`` of an interval late (the event loop was busy): a bucket
    of 1 + x requests keeps the rate exactly while ``late`` <= x (at the default 2: up to a
    whole interval), within its bound; 1.25 never sends two back to back; at 1 every late
    wake-up is lost."""

    def run(burst: float) -> list[float]:
        clock = Clock()

        async def late_sleep(seconds: float) -> None:
            clock.now += seconds + late / rate

        limiter = RateLimiter(rate, burst, clock=clock, sleep=late_sleep)

        async def go() -> list[float]:
            sends = []
            for _ in range(n):
                await limiter.acquire()
                limiter.release()
                sends.append(clock.now)
            return sends

        return asyncio.run(go())

    for burst in (1.25, 2.0):
        sends = run(burst)
        _assert_within(sends, rate, burst)
        if late <= burst - 1:
            assert sends[-1] <= (n - 1) / rate + 1e-9  # on time: no interval lost
        if burst < 2:
            assert min(b - a for a, b in itertools.pairwise(sends)) >= (2 - burst) / rate - 1e-9
    strict = run(1.0)
    assert strict[-1] == pytest.approx((n - 1) * (1 + late) / rate, rel=1e-6, abs=1e-9)


def _assert_within(sends: list[float], rate: float, burst: float) -> None:
    """In any window of length t at most rate * t + burst sends."""
    sends = sorted(sends)
    for i, start in enumerate(sends):
        for j in range(i, len(sends)):
            assert j - i + 1 <= burst + rate * (sends[j] - start) + 1e-6, (i, j, sends[i : j + 1])


class SteppedClock:
    """A fake event-loop clock moved by a driver, in small ticks or in jumps (a stall: the
    loop was blocked, every timer that came due meanwhile fires at once afterwards)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        until = self.now + seconds
        while self.now < until:  # noqa: ASYNC110 (the driver moves time, not an event)
            await asyncio.sleep(0)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(1, 200),
    burst=st.one_of(st.integers(1, 8), st.floats(1, 8)),
    cap=st.integers(1, 12),
    workers=st.integers(1, 16),
    steps=st.lists(
        st.one_of(st.floats(0.0005, 0.02), st.floats(0.1, 2.0)), min_size=20, max_size=200
    ),
    latency=st.floats(0.0, 0.3),
    throttle_every=st.sampled_from([0, 3, 17]),
    priorities=st.lists(st.integers(0, 3), min_size=16, max_size=16),
)
def test_sends_stay_within_rate_and_burst_when_the_loop_stalls(
    rate: float,
    burst: float,
    cap: int,
    workers: int,
    steps: list[float],
    latency: float,
    throttle_every: int,
    priorities: list[int],
) -> None:
    """Workers send through one limiter while the clock moves in ticks and in stalls (jumps):
    in any window the sends never exceed rate * t + burst, in flight never exceed the cap,
    and 429s (which shrink the burst and trim the rate) never push it above either; nor
    does the order of the line (each worker has a priority of its own)."""
    clock = SteppedClock()
    limiter = RateLimiter(rate, burst, max_in_flight=cap, clock=clock, sleep=clock.sleep)
    sends: list[float] = []
    in_flight = 0
    most = 0

    async def worker(priority: int) -> None:
        nonlocal in_flight, most
        while True:
            async with limiter.request((priority,)) as epoch:
                sends.append(clock.now)
                in_flight += 1
                most = max(most, in_flight)
                if throttle_every and len(sends) % throttle_every == 0:
                    limiter.throttled(epoch)
                await clock.sleep(latency)
                in_flight -= 1

    async def go() -> None:
        tasks = [asyncio.create_task(worker(priorities[i])) for i in range(workers)]
        for step in steps:
            clock.now += step
            for _ in range(3 * workers + 3):
                await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(go())
    assert sends
    _assert_within(sends, rate, burst)
    assert most <= cap


def test_the_line_goes_by_priority_then_arrival_and_skips_who_gave_up() -> None:
    """One token a second: who is sent next is the lowest priority, the earliest of equals;
    a waiter cancelled in the line (or just as its turn came) does not hold it up."""
    clock = SteppedClock()
    limiter = RateLimiter(1, 1, clock=clock, sleep=clock.sleep)
    order: list[str] = []

    async def send(name: str, priority: tuple[int, ...]) -> None:
        async with limiter.request(priority):
            order.append(name)

    async def settle() -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    async def go() -> None:
        await send("first", (5,))  # takes the only token: everyone else waits in line
        tasks = {
            name: asyncio.create_task(send(name, priority))
            for name, priority in [
                ("head", (9,)),  # arrives first: at the head, waiting for the token
                ("late-a", (1, 2)),
                ("gives-up", (0,)),
                ("late-b", (1, 2)),
                ("urgent", (0, 7)),
                ("low", (3,)),
            ]
        }
        await settle()
        tasks["gives-up"].cancel()
        for _ in range(6):
            clock.now += 1.0
            await settle()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    asyncio.run(go())
    assert order == ["first", "head", "urgent", "late-a", "late-b", "low"]
    assert not limiter._waiting and not limiter._head_taken  # the line is free again


def test_a_waiter_cancelled_just_as_its_turn_comes_passes_the_line_on() -> None:
    limiter = RateLimiter(0)

    async def go() -> None:
        await limiter._to_head(())  # at the head
        handed = asyncio.create_task(limiter._to_head((0,)))
        after = asyncio.create_task(limiter._to_head((1,)))
        for _ in range(3):
            await asyncio.sleep(0)
        limiter._next_to_head()  # the head is handed to `handed`...
        handed.cancel()  # ...which is cancelled before it could run
        for _ in range(3):
            await asyncio.sleep(0)
        assert handed.cancelled() and after.done()  # the line moved on to the next one

    asyncio.run(go())


def test_a_request_waiting_for_a_token_holds_no_slot() -> None:
    """Token first, then the slot: slots do not sit idle while the bucket refills."""
    clock = SteppedClock()
    limiter = RateLimiter(1, 1, max_in_flight=2, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        await limiter.acquire()  # the only token; its slot stays busy
        waiting = asyncio.create_task(limiter.acquire())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()
        assert limiter._slots is not None and limiter._slots._value == 1  # one free slot
        clock.now += 1.0
        for _ in range(5):
            await asyncio.sleep(0)
        assert waiting.done() and limiter._slots._value == 0
        limiter.release()
        limiter.release()

    asyncio.run(go())


def _paced_run(rate: float, cap: int, response_s: float, requests: int) -> RateLimiter:
    """``requests`` by 8 workers, each answered after ``response_s``; time moves in 1 ms ticks."""
    clock = SteppedClock()
    limiter = RateLimiter(rate, 2, max_in_flight=cap, clock=clock, sleep=clock.sleep)
    left = iter(range(requests))

    async def worker() -> None:
        for _ in left:
            async with limiter.request():
                await clock.sleep(response_s)

    async def go() -> None:
        workers = asyncio.gather(*(worker() for _ in range(8)))
        while not workers.done():
            clock.now += 0.001
            for _ in range(3):
                await asyncio.sleep(0)
        await workers

    asyncio.run(go())
    return limiter


def test_a_run_held_back_by_the_cap_in_flight_says_what_would_reach_the_rate() -> None:
    """Two in flight at 100 ms a response make 20 requests/s, not the 50 asked: the cap is
    full nearly all the time, and the advice names one that reaches the rate."""
    limiter = _paced_run(rate=50, cap=2, response_s=0.1, requests=100)
    duration = limiter._now()
    assert 4.5 < duration < 5.5  # 100 requests at 20/s
    assert limiter.answered == 100
    assert limiter.in_flight_s / limiter.answered == pytest.approx(0.1, abs=0.005)
    assert limiter.at_cap_s > 0.8 * duration
    advice = limiter.concurrency_advice(duration)
    assert advice is not None
    assert "concurrency 2 allows about 20 requests/s, below rate 50" in advice
    assert "; concurrency 7 would reach it" in advice  # 50/s x 0.1 s x 1.25


def test_a_run_paced_by_the_rate_gets_no_concurrency_advice() -> None:
    limiter = _paced_run(rate=20, cap=4, response_s=0.1, requests=60)
    duration = limiter._now()
    assert 2.8 < duration < 3.3  # the rate set the pace
    assert limiter.at_cap_s < 0.05 * duration
    assert limiter.concurrency_advice(duration) is None
    assert RateLimiter(0, max_in_flight=1).concurrency_advice(10.0) is None  # no rate to reach
    few = _paced_run(rate=50, cap=1, response_s=0.1, requests=3)  # a page, then two more
    assert few.at_cap_s > 0.9 * few._now()
    assert few.concurrency_advice(few._now()) is None  # its round trips, not the cap


def test_a_429_after_paced_sends_trims_the_rate_and_keeps_the_burst() -> None:
    """The burst was not used (every request waited for its token): it did not cause the
    429, and it stays (it absorbs the loop's late wake-ups)."""
    clock = Clock()
    limiter = RateLimiter(50, 2, clock=clock, sleep=clock.sleep)

    async def paced() -> int:
        for _ in range(5):
            await limiter.acquire()
            limiter.release()
        clock.now += 3.0  # quiet: the bucket fills up, and the first one after leans on it
        for _ in range(80):  # 1.6 s of paced sends: that lean is long past
            epoch = await limiter.acquire()
            limiter.release()
        return epoch

    epoch = asyncio.run(paced())
    limiter.throttled(epoch)
    assert limiter.burst == 2 and limiter.rate == pytest.approx(45)


@pytest.mark.parametrize(
    ("message", "per_s"),
    [
        (
            "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 second",
            5.0,
        ),
        (
            "The throttling threshold has been reached: policy user over ratelimit, limit:120, time:1 minute",
            2.0,
        ),
        ("policy user over ratelimit, limit:7.5,time:1 second", 7.5),
        ("The throttling threshold has been reached", None),
        ("limit:0,time:1 second", None),
        (None, None),
    ],
)
def test_a_429_names_the_policy_rate_when_its_message_does(
    message: str | None, per_s: float | None
) -> None:
    error = ThrottledError("throttled", status=429, error_code="APIG.0308", error_msg=message)
    assert error.limit_per_s == per_s


def test_a_stated_policy_caps_the_rate_below_it_for_good() -> None:
    """A 429 that names the gateway's limit: the rate goes below it at once and never grows
    back past it (it is the whole credential's budget), whatever the configured rate."""
    clock = Clock()
    limiter = RateLimiter(20, 2, clock=clock, sleep=clock.sleep)

    async def sends(n: int) -> int:
        epoch = 0
        for _ in range(n):
            epoch = await limiter.acquire()
            limiter.release()
            limiter.succeeded()
        return epoch

    epoch = asyncio.run(sends(10))
    limiter.throttled(epoch, stated=5.0)
    assert limiter.rate <= 5.0 * STATED_MARGIN
    asyncio.run(sends(2_000))  # minutes without another 429
    assert limiter.rate == pytest.approx(5.0 * STATED_MARGIN)
    assert limiter.stated == 5.0
    # its bucket is not named: never two back to back again, not even after a quiet spell
    assert limiter.burst == limiter.burst_ceiling == STATED_BURST


def test_a_429_shrinks_the_burst_then_trims_the_rate_then_recovers() -> None:
    clock = Clock()
    limiter = RateLimiter(50, 8, clock=clock, sleep=clock.sleep)

    async def burst() -> None:
        for _ in range(8):  # back to back: they lean on the bucket
            await limiter.acquire()
            limiter.release()

    asyncio.run(burst())
    first = limiter.epoch
    limiter.throttled(first)
    assert (limiter.burst, limiter.rate) == (4, 50)  # the bucket is learnt first
    limiter.throttled(first)  # another 429 of the same burst: nothing new
    assert (limiter.burst, limiter.rate) == (4, 50)
    limiter.throttled(limiter.epoch)
    limiter.throttled(limiter.epoch)
    assert (limiter.burst, limiter.rate) == (1, 50)
    limiter.throttled(limiter.epoch)  # burst 1 and still too fast: trim the rate a little
    assert limiter.burst == 1 and limiter.rate == pytest.approx(45)
    limiter.throttled(limiter.epoch)
    assert limiter.rate == pytest.approx(40.5)  # never a halving
    clock.now += 0.5
    limiter.succeeded()
    assert limiter.rate == pytest.approx(40.5)  # too soon after the 429
    clock.now += 1.5  # 1 s quiet, then a slow probe: 0.5 % of --rate a second, added
    limiter.succeeded()
    assert limiter.rate == pytest.approx(40.5 + 0.25)  # not back to --rate within 2 s
    clock.now += 4.0  # 6 s quiet: sustained success, the rate grows 25 % a second
    limiter.succeeded()
    assert limiter.rate == pytest.approx(40.5 + 5 * 0.25)
    clock.now += 0.5
    limiter.succeeded()
    assert limiter.rate == pytest.approx((40.5 + 5.5 * 0.25) * 1.25**0.5)
    clock.now += 1.0
    limiter.succeeded()
    assert (limiter.rate, limiter.burst) == (50, 1)  # back to --rate; the burst stays learnt
    for _ in range(200):  # a wrong --rate far above the gateway: trimmed, not collapsed
        limiter.throttled(limiter.epoch)
    assert limiter.rate == limiter.min_rate == 0.2


async def _lean(limiter: RateLimiter, clock: Clock) -> int:
    """A quiet moment fills the bucket; the next request leans on it. Returns its epoch."""
    clock.now += 1.0
    epoch = await limiter.acquire()
    limiter.release()
    return epoch


def test_a_burst_cut_by_a_lone_429_grows_back_once_quiet() -> None:
    """One 429 (a gateway that stalled counts late arrivals together) halves the burst; it
    does not cost the rest of the run: after ``regrow_after_s`` quiet it grows back."""
    clock = Clock()
    limiter = RateLimiter(50, 2, clock=clock, sleep=clock.sleep, regrow_after_s=10)
    limiter.throttled(asyncio.run(_lean(limiter, clock)))
    assert limiter.burst == 1
    clock.now += 9.5
    limiter.succeeded()
    assert limiter.burst == 1
    clock.now += 0.5  # 10 s without a 429
    limiter.succeeded()
    assert (limiter.burst, limiter.burst_ceiling) == (2, 2)


def test_a_burst_throttled_again_after_growing_back_becomes_the_ceiling() -> None:
    """Twice is the gateway's bucket: the level below stays the burst for the run."""
    clock = Clock()
    limiter = RateLimiter(50, 6, clock=clock, sleep=clock.sleep, regrow_after_s=10)
    limiter.throttled(asyncio.run(_lean(limiter, clock)))
    assert limiter.burst == 3
    for grown in (4, 5):  # one token per quiet period
        clock.now += 10.0
        limiter.succeeded()
        assert limiter.burst == grown
    limiter.throttled(asyncio.run(_lean(limiter, clock)))
    assert (limiter.burst, limiter.burst_ceiling) == (2, 4)
    for _ in range(10):
        clock.now += 10.0
        limiter.succeeded()
    assert limiter.burst == 4  # grows back to the ceiling, not to --burst
    limiter.throttled(asyncio.run(_lean(limiter, clock)))
    assert limiter.burst_ceiling == 3


def test_a_429_without_leaning_keeps_the_burst_where_it_is() -> None:
    """A 429 at burst 1, or after paced sends, trims the rate: no burst to regrow."""
    clock = Clock()
    limiter = RateLimiter(50, 1, clock=clock, sleep=clock.sleep, regrow_after_s=10)
    limiter.throttled(asyncio.run(_lean(limiter, clock)))
    clock.now += 60.0
    limiter.succeeded()
    assert (limiter.burst, limiter.burst_ceiling, limiter.rate) == (1, 1, 50)


def test_no_limit_still_caps_requests_in_flight() -> None:
    limiter = RateLimiter(0, max_in_flight=3)
    high = 0
    current = 0

    async def one() -> None:
        nonlocal high, current
        async with limiter.request():
            current += 1
            high = max(high, current)
            await asyncio.sleep(0.001)
            current -= 1

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(20)))

    asyncio.run(go())
    assert high == 3


def test_retry_delays_honour_retry_after_and_back_off() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=30, throttle_delay_s=2)
    rng = random.Random(1)
    throttled = ThrottledError("t")
    throttled.retry_after = 7.0
    assert delay_for(policy, 1, throttled, rng) >= 7.0
    plain = ThrottledError("t")
    # the provider's advised 2 to 5 s at its short end: the last pages' retries end the run
    assert all(2 <= delay_for(policy, 1, plain, rng) <= 2.5 for _ in range(200))
    assert all(4 <= delay_for(policy, 2, plain, rng) <= 5 for _ in range(200))
    assert max(delay_for(policy, 1, plain, rng) for _ in range(200)) > 2.25  # still spread
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
