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
bucket is smaller than ours: our ``burst`` is halved (down to 1). (A burst above 1 also
absorbs the event loop's late wake-ups: a request sent 2 ms late leaves the next one 2 ms
less to wait, which a bucket of one token cannot give back; so a 429 that the burst did not
cause does not take it away.) Otherwise the rate is what was too much, and the gateway's
answers say by how much: while it refuses most of what is sent, the pace of its
*successful* answers is its own rate, per second or per minute alike (``estimate``). When
at least 60 % of the answers of the last ``window_s`` (2 s, or 8 requests' time if that is
longer) were 429s, the rate is cut to ``margin`` (90 %) of that measured rate (at most
halved at once); otherwise (against a bucket of one token, sending up to twice its rate
makes every other request pass, whatever its rate in between: the successes then say
little) it is trimmed by ``trim`` (10 %). Every cut is at least that trim. Only a 429 for a
request sent after the last change counts (the 429s of one burst arrive together and say
the same thing). When the 429's message names the policy (``APIG.0308``: "limit:XX,
time:1 second|minute", ``errors.ThrottledError.limit_per_s``), that is the credential's
whole budget: the rate goes to ``STATED_MARGIN`` of it at once, returns there after a
trim, and never grows back past it (``stated``), and when that policy is below ``--rate``
the burst stays at ``STATED_BURST``; what is measured may cut further. Processes sharing a credential each see
their own share of the successes, so each cuts to its share (they share no budget: the
gateway's answers are the only thing they have in common).

The rate does not jump back to the configured one: after ``recover_after_s`` without a
429 it climbs back to the margin below the measured rate within ``recover_s``, and above
that it probes upward by ``probe`` (0.5 %) of the configured rate per second, added; the
next 429 cuts again, so the rate settles just under the gateway's with few 429s. The step
is the same for every process started with the same ``--rate`` while each cut takes a
share of its own rate: processes sharing a credential drift towards even shares
(additive increase, multiplicative decrease) instead of keeping whatever shares their
first cuts gave them; a step in proportion to each one's own rate would keep a process
that measured its share at a bad moment starved for the rest of its run. For the same
reason a 429 at a rate below the margin under the measured rate lowers that measure to
the rate refused: a measure that counted a burst the gateway's bucket held, or a share
that has since shrunk, is not a ceiling to climb back to. The measured rate
is a ceiling raised only by sustained success: after ``sustained_s`` (6 s) without a 429
the rate grows by ``growth`` (25 %) a second, compounded, up to the configured rate, but
by at most ``growth_per_request`` (4 %) per request it sends a second, so that a slow rate
does not overshoot further before a 429 can answer (at 2 requests/s: 8 % a second). That
is what finds the budget other processes leave when they finish (or that a share taken
while they all started at once underestimated); where there was none to find, it costs
one more cut. Measured in ``benchmarks/README.md`` (the throttle case).

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
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from connector.settings.names import name

__all__ = ["Priority", "RateLimiter"]

STATED_MARGIN = 0.85
"""How far below a policy that a 429 named the rate stays: a gateway counting arrivals in a
bucket of one request refuses any two that network jitter brings closer than its interval
(±20 ms at 5/s: one in ten at 90 % of the rate, one in a hundred at 85 %)."""

STATED_BURST = 1.25
"""The burst once a 429 named a policy below ``--rate``: its bucket is not named, and at 1.25 no two
requests leave back to back (after a quiet spell, a burst of two sends two at once, which a
bucket of one request refuses), while a quarter interval of a late wake-up is made up."""

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
        margin: float = 0.9,
        min_rate: float = 0.2,
        window_s: float = 2.0,
        recover_after_s: float = 1.0,
        recover_s: float = 2.0,
        probe: float = 0.005,
        sustained_s: float = 6.0,
        growth: float = 0.25,
        growth_per_request: float = 0.04,
        regrow_after_s: float = 10.0,
    ) -> None:
        self.ceiling = rate
        self.rate = rate
        self.burst = burst
        self.burst_ceiling = burst
        """The largest burst not yet proven too much (lowered when a regrown one fails)."""
        self.regrow_after_s = regrow_after_s
        self._regrown = False
        """The current burst was reached by growing back after a cut."""
        self._burst_changed: float | None = None
        self.min_rate = min(min_rate, rate) if rate > 0 else 0.0
        self.trim = trim
        self.margin = margin
        self.window_s = window_s
        self.recover_after_s = recover_after_s
        self.recover_s = recover_s
        self.probe = probe
        self.sustained_s = sustained_s
        self.growth = growth
        self.growth_per_request = growth_per_request
        self.stated: float | None = None
        """The rate the gateway's policy allows, as a 429's message named it (per second)."""
        self.estimate: float | None = None
        """The gateway's rate for this limiter as last measured (the pace of its successes
        while it refused most requests); None: not measured."""
        self._answers: deque[tuple[float, bool]] = deque()
        """(when, throttled) of the answers of the last ``_window()`` seconds."""
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
        """The rate after the last cut: recovery climbs from here."""
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
            f"{self.max_in_flight} request(s) were in flight, as many as {name('concurrency')} "
            f"allows, for {self.at_cap_s:.1f}s of {duration_s:.1f}s: at the "
            f"{response_s * 1000:.0f} ms the server took to answer, {name('concurrency')} "
            f"{self.max_in_flight} allows about {reachable:.0f} requests/s, below {name('rate')} "
            f"{self.ceiling:g}; {name('concurrency')} {needed} would reach it"
        )

    def throttled(self, epoch: int | None = None, *, stated: float | None = None) -> None:
        """The gateway said 429 to a request sent in ``epoch`` (default: the current one);
        ``stated``: the rate its policy allows, when its message says (per second). That is
        the credential's whole budget, shared with any other process using it: the rate is
        held below it from now on, and measured below that as before."""
        if self.unlimited:
            return
        now = self._now()
        if stated is not None and (self.stated is None or stated < self.stated):
            self.stated = stated
        self._answered(now, throttled=True)
        if epoch is not None and epoch != self.epoch:
            return
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
            if self.estimate is not None:
                # refused below the margin under the estimate: the estimate is too high (it
                # counted a burst the gateway's bucket held, or a share that has shrunk)
                self.estimate = min(self.estimate, self.rate / self.margin)
            cut = self.rate * (1.0 - self.trim)
            if self.stated is not None:
                cut = min(cut, self.stated * STATED_MARGIN)
            measured = self._gateway_rate(now)
            if measured is not None:
                self.estimate = measured
                cut = min(cut, max(measured * self.margin, self.rate / 2))
            self.rate = max(self.min_rate, cut)
        if self.stated is not None and self._allowed() < self.ceiling:
            # the policy is what holds this limiter back, whatever else this 429 says
            self.rate = max(self.min_rate, min(self.rate, self._allowed()))
            self.burst_ceiling = min(self.burst_ceiling, max(1.0, STATED_BURST))
            self.burst = min(self.burst, self.burst_ceiling)
        self._low_rate = self.rate
        self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """A request got through: it counts towards the gateway's measured rate."""
        if self.unlimited:
            return
        self._answered(self._now(), throttled=False)
        self._recover()

    def _window(self) -> float:
        """Seconds of answers to measure over: ``window_s``, or 8 requests' time if longer."""
        return max(self.window_s, 8.0 / self.rate)

    def _answered(self, now: float, *, throttled: bool) -> None:
        self._answers.append((now, throttled))
        horizon = now - self._window()
        while self._answers and self._answers[0][0] < horizon:
            self._answers.popleft()

    def _gateway_rate(self, now: float) -> float | None:
        """The gateway's rate as its answers over the window show it, when it refused at
        least 60 % of them: it passed what it allows, so the pace of its successes is its
        rate (for this limiter). None with fewer than three successes, or when it refused
        less: then the successes say how much was sent, not how much it allows (against a
        bucket of one token, sending between 1x and 2x its rate, every other request
        passes: the pace of the successes is then half of what was sent, whatever the
        gateway's rate between those two).

        Two measures, each at most the gateway's rate, and the larger is taken: the
        successes over the time from the first to the last (low when the workers sat out a
        retry wait meanwhile), and the successes over the gaps between two successes with
        a 429 in between (the gateway was empty during those: only its rate filled it;
        low when a request went out only long after it had refilled)."""
        since = now - self._window()
        passed: list[float] = []
        contested: list[float] = []
        refused = 0
        refused_since_success = False
        for when, throttled in self._answers:
            if when < since:
                continue
            if throttled:
                refused += 1
                refused_since_success = True
                continue
            if passed and refused_since_success:
                contested.append(when - passed[-1])
            passed.append(when)
            refused_since_success = False
        if len(passed) < 3 or refused < 0.6 * (len(passed) + refused):
            return None
        measures = [(len(passed) - 1) / max(passed[-1] - passed[0], 1e-3)]
        if len(contested) >= 2:
            measures.append(len(contested) / max(sum(contested), 1e-3))
        return max(measures)

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
        if self.rate >= self._allowed():
            return
        quiet = now - self._last_429 - self.recover_after_s
        if quiet <= 0:
            return
        self._refill(now)
        # back to the margin below the measured rate within recover_s, then a slow probe;
        # after sustained_s without a 429, growth a second (compounded)
        if self.estimate is not None:
            known = self.estimate * self.margin
        elif self._allowed() < self.ceiling:  # nothing measured: below a policy a 429 named
            known = self._allowed()
        else:  # a policy above --rate still refused: other processes share it
            known = self._low_rate
        if known > self._low_rate and self.recover_s > 0:
            ramp = min(quiet, self.recover_s)
            level = self._low_rate + (known - self._low_rate) * ramp / self.recover_s
        else:
            ramp, level = 0.0, max(known, self._low_rate)
        probed = level + self.probe * self.ceiling * (quiet - ramp)
        sustained = now - self._last_429 - self.sustained_s
        if sustained > 0:  # (capped: a long idle would overflow the float, not add a thing)
            growth = min(self.growth, self.growth_per_request * self.rate)
            probed *= (1.0 + growth) ** min(sustained, 100.0)
        self.rate = max(self.rate, min(self._allowed(), probed))

    def _allowed(self) -> float:
        """The most the rate may grow back to: the configured rate, or below the gateway's
        stated policy when a 429 named one."""
        if self.stated is None:
            return self.ceiling
        return min(self.ceiling, self.stated * STATED_MARGIN)
