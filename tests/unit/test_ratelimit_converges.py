"""The limiter finds the gateway's rate: limiters driven in virtual time against a simulated
token-bucket gateway that answers 429, as the fetcher drives them (a request in the
limiter's block, a throttled page waiting 2 to 2.5 s before it goes back in line)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connector.source.limiter import RateLimiter


class VirtualTime:
    """A clock that jumps from one timer to the next: a simulated minute takes
    milliseconds. ``sleep`` parks the caller until the clock reaches its timer."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._order), wake))
        await wake

    async def run_until(self, end: float) -> None:
        """Let every task run until it waits on a timer, then move to the earliest timer."""
        while True:
            for _ in range(20):
                await asyncio.sleep(0)
            if not self._timers or self._timers[0][0] > end:
                self.now = end
                return
            self.now, _, wake = heapq.heappop(self._timers)
            if not wake.done():
                wake.set_result(None)


class Gateway:
    """A token bucket per credential, as the simulator's: ``rate`` a second, ``bucket``
    at most; a refused request takes nothing."""

    def __init__(self, rate: float, bucket: float) -> None:
        self.rate = rate
        self.bucket = bucket
        self._tokens = bucket
        self._updated = 0.0

    def admit(self, now: float) -> bool:
        self._tokens = min(self.bucket, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class Tally:
    """What one limiter sent, by when it was answered."""

    answers: list[tuple[float, bool]] = field(default_factory=list)
    taken: int = 0
    """Pages taken by a worker so far."""
    finished: float = 0.0
    """When the last page was in."""

    def after(self, start: float) -> tuple[int, int]:
        """(successes, 429s) answered at ``start`` or later."""
        late = [throttled for when, throttled in self.answers if when >= start]
        return len(late) - sum(late), sum(late)


def drive(
    gateway: Gateway,
    limiters: list[RateLimiter],
    time: VirtualTime,
    *,
    seconds: float,
    latency_s: float = 0.1,
    jitter_s: float = 0.02,
    workers: int = 8,
    seed: int = 0,
    pages: int | None = None,
) -> list[Tally]:
    """Every limiter with ``workers`` workers for ``seconds``, each fetching ``pages`` pages
    (None: always a page to fetch); a throttled page is fetched again."""
    rng = random.Random(seed)
    tallies = [Tally() for _ in limiters]

    async def worker(limiter: RateLimiter, tally: Tally) -> None:
        while pages is None or tally.taken < pages:
            tally.taken += 1
            admitted = False
            while not admitted:
                admitted = await attempt(limiter, tally)
        tally.finished = max(tally.finished, time.now)

    async def attempt(limiter: RateLimiter, tally: Tally) -> bool:
        """One request for a page, as the fetcher sends it: True when it got through."""
        async with limiter.request() as epoch:
            await time.sleep(max(0.0, latency_s + rng.uniform(-jitter_s, jitter_s)))
            admitted = gateway.admit(time.now)
            tally.answers.append((time.now, not admitted))
            if not admitted:
                limiter.throttled(epoch)
        if admitted:
            limiter.succeeded()
        else:
            await time.sleep(rng.uniform(2.0, 2.5))  # the retry policy's wait after a 429
        return admitted

    async def go() -> None:
        tasks = [
            asyncio.create_task(worker(limiter, tally))
            for limiter, tally in zip(limiters, tallies, strict=True)
            for _ in range(workers)
        ]
        await time.run_until(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(go())
    return tallies


def limiter_on(time: VirtualTime, rate: float, burst: float = 2) -> RateLimiter:
    sleep: Callable[[float], Awaitable[None]] = time.sleep
    return RateLimiter(rate, burst, max_in_flight=8, clock=time, sleep=sleep)


@settings(max_examples=25, deadline=None)
@given(
    gateway_rate=st.floats(2, 60),
    over=st.floats(1.0, 4.0),
    bucket=st.sampled_from([1, 2, 5]),
    burst=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
# a probe of 1 % of --rate a second, against a gateway at a quarter of it: 15.1 % of 429s
@example(gateway_rate=2.0, over=3.875, bucket=1, burst=1, seed=1)
def test_a_rate_up_to_four_times_the_gateways_converges_to_it(
    gateway_rate: float, over: float, bucket: int, burst: int, seed: int
) -> None:
    """After the first 20 s of a simulated minute, the rate sent is within 1.25x of the
    gateway's (either way) and at most 15 % of the answers are 429s."""
    time = VirtualTime()
    limiter = limiter_on(time, gateway_rate * over, burst)
    jitter = 0.05 / gateway_rate  # arrivals spread over a tenth of the gateway's interval
    gateway = Gateway(gateway_rate, bucket)
    (tally,) = drive(gateway, [limiter], time, seconds=60, jitter_s=jitter, seed=seed)
    ok, refused = tally.after(20.0)
    sent = (ok + refused) / 40
    assert gateway_rate / 1.25 <= sent <= gateway_rate * 1.25, (ok, refused, limiter.rate)
    assert refused <= 0.15 * (ok + refused), (ok, refused, limiter.rate)


@settings(max_examples=25, deadline=None)
@given(
    gateway_rate=st.floats(1, 60),
    share=st.floats(0.3, 1.0),
    burst=st.sampled_from([1, 1.25, 2]),
    seed=st.integers(0, 2**16),
)
def test_a_rate_the_gateway_allows_is_never_cut(
    gateway_rate: float, share: float, burst: float, seed: int
) -> None:
    """At or below the gateway's rate, with a gateway bucket above ours (arrivals jittered
    by up to a tenth of its interval): no 429, the rate stays, and the successes keep it."""
    time = VirtualTime()
    rate = gateway_rate * share
    limiter = limiter_on(time, rate, burst)
    gateway = Gateway(gateway_rate, 5)
    jitter = 0.05 / gateway_rate
    (tally,) = drive(gateway, [limiter], time, seconds=30, jitter_s=jitter, seed=seed)
    ok, refused = tally.after(0.0)
    assert refused == 0
    assert limiter.rate == rate and limiter.epoch == 0
    assert ok >= rate * 30 * 0.97


@settings(max_examples=8, deadline=None)
@given(
    gateway_rate=st.floats(8, 40),
    over=st.floats(1.5, 4.0),
    processes=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
# a process that measured its share while it was small: with a probe in proportion to its
# own rate and that measure kept as its ceiling, it stayed starved (47 and 25 successes)
@example(gateway_rate=20.0, over=2.9223677747488175, processes=2, seed=971)
@example(gateway_rate=12.626473127509065, over=2.6383005515054974, processes=4, seed=5141)
def test_processes_sharing_a_credential_each_converge_to_a_share(
    gateway_rate: float, over: float, processes: int, seed: int
) -> None:
    """Separate processes share no budget; each sees only its own successes, so each
    cuts to its share. After 20 s their sum reaches 80 % of the gateway's rate with at most
    15 % of 429s; none is starved (the shares are not even: each gets at least a fifth of
    an even share)."""
    time = VirtualTime()
    each = gateway_rate * over / processes
    limiters = [limiter_on(time, each) for _ in range(processes)]
    gateway = Gateway(gateway_rate, 5)
    jitter = 0.05 / gateway_rate
    tallies = drive(gateway, limiters, time, seconds=60, jitter_s=jitter, seed=seed)
    counts = [tally.after(20.0) for tally in tallies]
    ok, refused = sum(c[0] for c in counts), sum(c[1] for c in counts)
    assert ok >= 0.8 * gateway_rate * 40, counts
    assert refused <= 0.15 * (ok + refused), counts
    assert all(c[0] >= gateway_rate * 40 / processes / 5 for c in counts), counts


def test_a_limiter_far_over_measures_the_gateways_rate_and_cuts_to_it() -> None:
    """At 4x a gateway of 5/s (bucket 1), most answers are 429s: the pace of the successes
    is the gateway's rate, and the rate is cut to 90 % of it, not by 10 % at a time."""
    time = VirtualTime()
    limiter = limiter_on(time, 20, 1)
    drive(Gateway(5, 1), [limiter], time, seconds=3, jitter_s=0.005)
    assert limiter.estimate is not None
    assert 4.0 <= limiter.estimate <= 5.5
    assert limiter.rate <= 0.9 * 5.5


def test_a_few_429s_near_the_rate_trim_it_and_measure_nothing() -> None:
    """Just over a bucket of one token every other request passes, whatever the gateway's
    rate between 1x and 2x what was sent: the successes say nothing, the rate is trimmed."""
    time = VirtualTime()
    limiter = limiter_on(time, 6, 1)
    drive(Gateway(5, 1), [limiter], time, seconds=1.5, jitter_s=0.005)
    assert limiter.estimate is None
    assert limiter.epoch >= 1
    assert limiter.rate == pytest.approx(6 * 0.9**limiter.epoch)
