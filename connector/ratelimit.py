"""What the gateway sees of one endpoint and credential: a paced rate and a cap in flight.

Rate and concurrency are separate knobs held by one object, taken in one order: a request
waits in line for a rate token and then for a free in-flight slot, and takes both at the
instant it is sent. No slot is held while the bucket is empty, and no token is spent on a
request that then waits for a slot (it would leave later, in a burst with others).

The line is ordered by the caller's priority, then by arrival. All projects of a credential
share the bucket, and a token must never find the line empty while there is work to find:
the fetcher gives a project's first page (which unlocks all its other pages) precedence
and otherwise serves the project that started first. So projects finish one after another
rather than all at once, and the next project's first page is answered while the others'
pages still keep the bucket busy.

The bucket is strict at the send points: it never holds more than ``burst`` tokens and a
token is only taken when one is there (no reservations ahead of time), so in any window of
length t at most ``rate * t + burst`` requests are sent, also after the event loop stalled:
waiters that wake late find at most ``burst`` tokens, not the ones they missed. Time comes
from ``loop.time()`` or an injected clock, so tests control it. ``burst`` need not be
whole. At exactly 1 every moment the event loop wakes a request late is lost, every time;
at 2 (the connector's default) the next request makes up for it, up to a whole interval,
and at most two requests ever leave together; at 1.25 up to a quarter interval is made up
and no two requests leave back to back.

Adaptation (the gateway's policy is not published): a 429 says what was sent was more than
the gateway allows. When requests recently leaned on the bucket (one was sent with more
than one and a half tokens in it, within ``burst / rate + 1 s`` of the 429), the gateway's
bucket is smaller than ours: our ``burst`` is halved (down to 1). Otherwise the sends were
paced at the rate and the rate is what was too much: it is trimmed by ``trim`` (10 %). (A
burst above 1 also absorbs the event loop's late wake-ups: a request sent 2 ms late leaves
the next one 2 ms less to wait, which a bucket of one token cannot give back; so a 429 that
the burst did not cause does not take it away.) Only a 429 for a request sent after the
last change counts (the 429s of one burst arrive together and say the same thing). When no
429 follows for ``recover_after_s``, the rate grows back to the configured one within
``recover_s``.

The burst is learnt the same way, and kept: after ``regrow_after_s`` without a 429 it
grows back by one token at a time, up to the configured one (a lone 429 from a gateway
that stalled says little about its bucket); when a burst that grew back is throttled again
while requests leaned on it, the level below becomes its ceiling for the rest of the run
(twice is the gateway's bucket speaking, not chance).

The cap in flight is the user's (``--concurrency``), not learnt: the limiter only measures
how long it was full and the mean response time, so that a run the cap held back below the
rate can say which cap would have reached it (``concurrency_advice``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["Priority", "RateLimiter"]

Priority = tuple[int, ...]
"""Lower goes first; equal priorities go in arrival order."""


class RateLimiter:
    """One per endpoint and credential: ``rate`` requests/s (0: no limit), ``burst`` back
    to back, at most ``max_in_flight`` in flight (None: no cap)."""

    def __init__(
        self,
        rate: float,
        burst: float = 1,
        *,
        max_in_flight: int | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        trim: float = 0.1,
        min_rate: float = 0.2,
        recover_after_s: float = 1.0,
        recover_s: float = 2.0,
        regrow_after_s: float = 10.0,
    ) -> None:
        self.ceiling = rate
        self.rate = rate
        self.configured_burst = burst
        self.burst = burst
        self.burst_ceiling = burst
        """The largest burst not yet proven too much (lowered when a regrown one fails)."""
        self.regrow_after_s = regrow_after_s
        self._regrown = False
        """The current burst was reached by growing back after a cut."""
        self._burst_changed: float | None = None
        self.min_rate = min(min_rate, rate) if rate > 0 else 0.0
        self.trim = trim
        self.recover_after_s = recover_after_s
        self.recover_s = recover_s
        self.max_in_flight = max_in_flight
        self.epoch = 0
        """Changes made after 429s; a request sent in an older epoch says nothing new."""
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated: float | None = None
        self._last_429: float | None = None
        self._leaned: float | None = None
        """When a request was last sent with more than 1.5 tokens in the bucket."""
        self._low_rate = rate
        """The rate after the last cut: recovery climbs from here to the ceiling."""
        self._waiting: list[tuple[Priority, int, asyncio.Future[None]]] = []  # a heap
        self._arrivals = itertools.count()
        self._head_taken = False
        """One request at a time is at the head of the line, waiting for a token and a slot."""
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self.at_cap_s = 0.0
        """Seconds with ``max_in_flight`` requests in flight (``request``): when that is most
        of a run, the cap and not the rate set its pace."""
        self._in_flight = 0
        self._capped_since = 0.0
        self.in_flight_s = 0.0
        self.answered = 0
        """Seconds requests spent in flight, and how many (``request``): mean response time."""

    @property
    def unlimited(self) -> bool:
        return self.ceiling <= 0

    @property
    def tokens(self) -> float:
        """Tokens in the bucket now (for tests and diagnostics)."""
        self._refill(self._now())
        return self._tokens

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now if self._updated is None else max(self._updated, now)

    @contextlib.asynccontextmanager
    async def request(self, priority: Priority = ()) -> AsyncIterator[int]:
        """Wait for a token and a slot; send inside the block. Yields the epoch of the send
        (give it to :meth:`throttled`)."""
        epoch = await self.acquire(priority)
        sent = self._now()
        self._in_flight += 1
        if self._in_flight == self.max_in_flight:
            self._capped_since = sent
        try:
            yield epoch
        finally:
            self.release()
            now = self._now()
            if self._in_flight == self.max_in_flight:
                self.at_cap_s += now - self._capped_since
            self._in_flight -= 1
            self.in_flight_s += now - sent
            self.answered += 1

    async def _to_head(self, priority: Priority) -> None:
        """Wait until this request is at the head of the line."""
        if not self._head_taken and not self._waiting:
            self._head_taken = True
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # the head was handed over: pass it on
                self._next_to_head()
            raise

    def _next_to_head(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # a cancelled waiter's future is done: skip it
                turn.set_result(None)
                return
        self._head_taken = False

    async def acquire(self, priority: Priority = ()) -> int:
        """Take a token and a slot, both at the instant the request may be sent; the caller
        must :meth:`release` the slot when the response is in. Returns the epoch."""
        await self._to_head(priority)
        try:
            if not self.unlimited:
                await self._until_token()
            if self._slots is not None:
                await self._slots.acquire()
            try:
                if not self.unlimited:
                    # tokens only grow while waiting for a slot (capped at burst), unless a
                    # 429 emptied the bucket meanwhile: then wait again, holding the slot
                    await self._until_token()
                    if self._tokens > 1.5:
                        self._leaned = self._updated
                    self._tokens = max(0.0, self._tokens - 1.0)
            except BaseException:
                if self._slots is not None:
                    self._slots.release()
                raise
            self._recover()
            return self.epoch
        finally:
            self._next_to_head()

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _until_token(self) -> None:
        while True:
            self._refill(self._now())
            if self._tokens >= 1.0 - 1e-9:  # float sums: 0.9999999999 is a token
                return
            await self._sleep((1.0 - self._tokens) / self.rate)

    def concurrency_advice(self, duration_s: float) -> str | None:
        """What to tell the user when the cap in flight, not the rate, set the pace: it was
        full for a quarter of a run of ``duration_s`` or more, and at the mean response time
        it allows fewer requests a second than the rate. Else None, also for a run of fewer
        than four requests per slot: its pace was its round trips (a project's first page
        goes alone), not the cap."""
        if self.unlimited or not self.max_in_flight or duration_s <= 0:
            return None
        if self.answered < 4 * self.max_in_flight:
            return None
        response_s = self.in_flight_s / self.answered
        reachable = self.max_in_flight / response_s if response_s > 0 else math.inf
        if self.at_cap_s < 0.25 * duration_s or reachable >= self.ceiling:
            return None
        needed = math.ceil(self.ceiling * response_s * 1.25)
        return (
            f"{self.max_in_flight} request(s) were in flight, as many as --concurrency allows, "
            f"for {self.at_cap_s:.1f}s of {duration_s:.1f}s: at the {response_s * 1000:.0f} ms "
            f"the server took to answer, --concurrency {self.max_in_flight} allows about "
            f"{reachable:.0f} requests/s, below --rate {self.ceiling:g}; --concurrency "
            f"{needed} would reach it"
        )

    def throttled(self, epoch: int | None = None) -> None:
        """The gateway said 429 to a request sent in ``epoch`` (default: the current one)."""
        if self.unlimited or (epoch is not None and epoch != self.epoch):
            return
        now = self._now()
        self._refill(now)
        self.epoch += 1
        self._last_429 = now
        leaned = self._leaned is not None and now - self._leaned <= self.burst / self.rate + 1.0
        if self.burst > 1 and leaned:
            if self._regrown:
                self.burst_ceiling = max(1.0, self.burst - 1)
            self.burst = max(1.0, float(self.burst // 2))
            self._regrown, self._burst_changed = False, now
        else:
            self.rate = max(self.min_rate, self.rate * (1.0 - self.trim))
        self._low_rate = self.rate
        self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """A request got through (kept for callers; recovery is driven by time)."""
        self._recover()

    def _recover(self) -> None:
        if self.unlimited or self._last_429 is None:
            return
        now = self._now()
        if self.burst < self.burst_ceiling and self._burst_changed is not None:
            quiet = now - max(self._last_429, self._burst_changed)
            if quiet >= self.regrow_after_s:
                self._refill(now)
                self.burst = min(self.burst + 1, self.burst_ceiling)
                self._regrown, self._burst_changed = True, now
        if self.rate >= self.ceiling:
            return
        quiet = now - self._last_429 - self.recover_after_s
        if quiet <= 0:
            return
        self._refill(now)
        share = min(1.0, quiet / self.recover_s) if self.recover_s > 0 else 1.0
        self.rate = min(self.ceiling, self._low_rate + (self.ceiling - self._low_rate) * share)
