"""Many pages of one project: rate limit, retries, concurrency, completeness.

    PageFetcher     one page through the rate limiter and the retry policy
    ProjectCrawler  every page of one project's query, concurrently, until the overlap
                    chain (paging.Chain) proves the crawl complete; splits queries that
                    reach past the offset ceiling by latest_update_time

Pages are handed to ``emit`` as they arrive; ``emit`` blocks when the writer falls behind
(a bounded queue), which stops the workers: memory does not grow with the project.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from array import array
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from connector.errors import ConnectorError, DataLossError, ThrottledError
from connector.job import memory
from connector.job.logs import error_fields
from connector.settings.config import FetchSettings, RetryPolicy, TotalTolerance
from connector.settings.names import name, setting
from connector.shape.page import PageRecords
from connector.shape.records import any_key, describe_key, differing_fields, keys_of
from connector.source.client import Page, PageRequest, PageSource
from connector.source.limiter import RateLimiter
from connector.source.paging import (
    Chain,
    ChainState,
    Mismatch,
    PageRead,
    Repair,
    page_offset,
    probe_offset,
    reachable_pages,
)
from connector.source.retry import retrying
from connector.source.signing import QueryValue

__all__ = ["CrawlStats", "Emit", "PageFetcher", "ProjectCrawler"]

log = logging.getLogger("connector")

Emit = Callable[[PageRecords], Awaitable[None]]
"""Receives a page, the position in it of the first record given, and the records to store
(the overlap record at position 0 may be held back until its boundary is proven)."""

MAX_REPLANS = 2
TIME_FILTER = ("start_latest_update_time", "end_latest_update_time")


@dataclass(slots=True)
class CrawlStats:
    """What one project's crawl did: requests, retries, pages and records, for the report."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    pages: int = 0
    records_read: int = 0
    """Records handed on for storage (each record of the overlap chain once): what the
    report counts as ``records_fetched`` and the progress line shows."""
    total_num: int | None = None
    """The project's ``total_num`` as its first page announced it (a hint)."""
    pages_reread: int = 0
    drift_reasons: list[str] = field(default_factory=list)
    slices: int = 1
    retry_reasons: dict[str, int] = field(default_factory=dict)
    probes: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    page_size: int | None = None
    """The page size the server really serves, when smaller than asked."""
    total_num_mismatch: Mismatch | None = None
    """Where the list ended and the ``total_num`` that disagreed, when the tolerance
    accepted it or when it failed the crawl."""
    identical_rows: int = 0
    """Extra copies of records that the server listed twice, identical in every field."""

    @property
    def drift_detected(self) -> bool:
        return bool(self.drift_reasons)

    def repair(self, kind: str) -> None:
        self.repairs[kind] = self.repairs.get(kind, 0) + 1

    def drift(self, reason: str) -> None:
        if reason not in self.drift_reasons:
            self.drift_reasons.append(reason)

    def for_report(self, asked_page_size: int) -> dict[str, Any]:
        """The crawl's part of the project's report, under the report's names."""
        mismatch = self.total_num_mismatch
        return {
            "total_num": self.total_num,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "pages": self.pages,
            "pages_reread": self.pages_reread,
            "end_probes": self.probes,
            "repairs": dict(self.repairs),
            "page_size": self.page_size or asked_page_size,
            "slices": self.slices,
            "total_num_mismatch": mismatch.as_dict() if mismatch is not None else None,
            "drift_detected": self.drift_detected,
            "drift": list(self.drift_reasons),
            "retry_reasons": dict(self.retry_reasons),
        }


class PageFetcher:
    """One page: wait for a rate token and an in-flight slot (the limiter holds both, one
    per endpoint and credential), send, retry what can be retried.

    The limiter's line is ordered: a project's first page before other pages (it unlocks
    the project's other pages), and otherwise the project that started first (:meth:`rank`)
    first, so that projects finish one after another and their successors' pages are
    queued before the bucket runs dry."""

    def __init__(
        self,
        source: PageSource,
        limiter: RateLimiter,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.limiter = limiter
        self.policy = policy
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._ranks = itertools.count()

    def rank(self) -> int:
        """The order in which a project started, among the projects of this fetcher."""
        return next(self._ranks)

    async def fetch(
        self, request: PageRequest, stats: CrawlStats, priority: tuple[int, ...] = ()
    ) -> Page:
        async def once() -> Page:
            async with self.limiter.request(priority) as epoch:
                stats.requests += 1
                try:
                    page = await self.source.get_page(request)
                except ThrottledError as error:
                    stats.throttled += 1
                    self.limiter.throttled(epoch, stated=error.limit_per_s)
                    raise
            self.limiter.succeeded()
            return page

        def on_retry(error: ConnectorError, attempt: int, wait: float) -> None:
            stats.retries += 1
            kind = type(error).__name__
            stats.retry_reasons[kind] = stats.retry_reasons.get(kind, 0) + 1
            log.debug(
                "retry %d in %.2fs: %s",
                attempt,
                wait,
                error,
                extra={**error_fields(error), "attempt": attempt, "wait_s": round(wait, 3)},
            )

        return await retrying(once, self.policy, on_retry=on_retry, sleep=self.sleep, rng=self.rng)


@dataclass(slots=True)
class _Held:
    """A page's first record (its overlap with the page before), held back until the crawl
    ends and shows whether the page before holds it."""

    page: Page
    record: Any


@dataclass(slots=True)
class _Read:
    """A page as it came back, with the crawl's ticks when it was sent and received, and
    the page size of the geometry it was asked for (the request itself always asks for the
    configured size: a server that caps pages serves no more, and one that served fewer
    only for a while shows it with a fuller page)."""

    page: Page
    sent: int
    received: int
    size: int


class _PastCeiling(Exception):
    """The list goes on past the offset ceiling although its total_num said it would not
    (a total that is low, or a list that grew): the query is read again by time."""


class _Replan(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class ProjectCrawler:
    """Reads every record of one project's query, until the chain proves the crawl complete
    (see :mod:`connector.source.paging`), or fails loudly saying what it could not prove."""

    def __init__(
        self,
        fetcher: PageFetcher,
        settings: FetchSettings,
        key_fields: tuple[str, ...],
        *,
        project_id: str,
        params: list[tuple[str, QueryValue]],
        emit: Emit,
        stats: CrawlStats,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        after_first: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``after_first``: awaited once the first page is in, before any other page is
        asked for (the pipeline admits the project's reading there)."""
        self.after_first = after_first
        self.fetcher = fetcher
        self.settings = settings
        self.key_fields = key_fields
        self.project_id = project_id
        self.params = params
        self.emit = emit
        self.stats = stats
        self.now_ms = now_ms
        self.size = settings.page_size
        self.total_num: int | None = None
        self.proven_records = 0
        """Records in the final chains (each once): what the output must hold at least."""
        self._repeats = False
        """A response listed one natural key twice (identical rows: ``_check_repeats``)."""
        self._oversize = False
        """A response held more records than the page size the crawl re-planned to: the
        server's cap was transient, and the crawl goes back to the configured size."""
        self._ticks = itertools.count()
        self._replans = 0
        self._rank = fetcher.rank()

    @property
    def max_index(self) -> int:
        return reachable_pages(self.size, self.settings.max_offset) - 1

    def _within_reach(self, total: int) -> bool:
        """Offset paging can prove the end of ``total`` records: the read that proves it
        (at their last record, ``probe_offset``) is within the offset ceiling. A longer
        query is split by time, and so is a query whose list turns out to go on past the
        ceiling (``_PastCeiling``)."""
        return probe_offset(total) <= self.settings.max_offset

    async def _read(
        self,
        offset: int,
        params: list[tuple[str, QueryValue]],
        size: int | None = None,
        *,
        first: bool = False,
    ) -> _Read:
        """One page; ``first``: a first page, which unlocks the others (it goes first)."""
        geometry = size or self.size
        request = PageRequest(self.project_id, offset, self.settings.page_size, tuple(params))
        sent = next(self._ticks)
        priority = (0 if first else 1, self._rank)
        page = await self.fetcher.fetch(request, self.stats, priority)
        return _Read(page, sent, next(self._ticks), geometry)

    def _summary(self, read: _Read) -> PageRead:
        page = read.page
        keys = keys_of(page.records, self.key_fields)
        summary = PageRead(
            page.request.offset, read.size, keys, page.total_num, read.sent, read.received
        )
        if summary.repeats_keys:
            self._check_repeats(page, keys)
        return summary

    def _check_repeats(self, page: Page, keys: array[int]) -> None:
        """A response that lists one natural key twice: identical rows are one row (the
        sink removes the copy); rows that differ cannot both be right: a loud failure."""
        self._repeats = True
        first: dict[int, Any] = {}
        for key, record in zip(keys, page.records, strict=True):
            other = first.setdefault(key, record)
            if other is not record and other != record:
                raise DataLossError(
                    f"two records of the page at offset {page.request.offset} share the "
                    f"natural key ({describe_key(record, self.key_fields)}) but differ in "
                    f"{', '.join(differing_fields(other, record)) or 'their values'}: the "
                    "server lists one image twice with different data, and which is right "
                    "cannot be told; nothing was published for this project",
                    project_id=self.project_id,
                    offset=page.request.offset,
                    request_id=page.request_id,
                )

    async def run(self) -> None:
        first = await self._first_page(self.params)
        self.total_num = self.stats.total_num = first.page.total_num
        if self.after_first is not None:
            await self.after_first()
        if self._within_reach(first.page.total_num):
            try:
                await self._crawl(self.params, first)
                return
            except _PastCeiling:
                self._past_ceiling(first.page.total_num)
        await self._crawl_split(first.page)

    def _past_ceiling(self, total: int) -> None:
        log.warning(
            "project %s: the list goes on past the offset ceiling (max offset %d) although "
            "its total_num said %d: reading it again by latest_update_time",
            self.project_id,
            self.settings.max_offset,
            total,
        )
        self.stats.drift(
            "the list went on past the offset ceiling where total_num said it would not; "
            "read again by latest_update_time"
        )

    async def _first_page(self, params: list[tuple[str, QueryValue]]) -> _Read:
        """Page 0, read twice when it is short while ``total_num`` announces more: once to
        tell a transient short page from a server that caps the page size; and a page
        short twice alike is a cap only when a read from its last record finds more after
        it (else the list ends there and its ``total_num`` over-counts: the crawl's proof
        and the tolerance decide)."""
        read = await self._read(0, params, first=True)
        length = len(read.page.records)
        if not 0 < length < self.size or read.page.total_num <= length:
            return read
        again = await self._read(0, params, first=True)
        self.stats.pages_reread += 1
        if len(again.page.records) == length >= 2 and await self._goes_on_after(length, params):
            self._cap(length)
        else:
            self.stats.repair("short")
        return again if len(again.page.records) >= length else read

    async def _goes_on_after(self, length: int, params: list[tuple[str, QueryValue]]) -> bool:
        """Whether the list holds records after its first ``length``: a read from the last
        of them (``probe_offset``) that holds more than that one record."""
        self.stats.probes += 1
        past = await self._read(probe_offset(length), params, first=True)
        return len(past.page.records) > 1

    def _cap(self, size: int) -> None:
        if size >= self.settings.page_size:
            log.warning(
                "project %s: the server serves full pages of %d records again: reading with "
                "page size %d",
                self.project_id,
                self.settings.page_size,
                self.settings.page_size,
            )
            self.size = self.settings.page_size
            self.stats.page_size = None
            return
        log.warning(
            "project %s: the server serves at most %d records per page (asked for %d): "
            "reading with page size %d",
            self.project_id,
            size,
            self.settings.page_size,
            size,
        )
        self.size = size
        self.stats.page_size = size

    async def _crawl_split(self, first: Page) -> None:
        """The query reaches past the offset ceiling: read it in latest_update_time ranges,
        each proven like a whole crawl, then check that they add up to the query."""
        given = dict(self.params)
        low = int(given.get(TIME_FILTER[0], 0))
        high = int(given.get(TIME_FILTER[1], self.now_ms() + 86_400_000))
        base = [(k, v) for k, v in self.params if k not in TIME_FILTER]
        log.info(
            "project %s: %d records, beyond what offset paging reaches (max offset %d): "
            "splitting by latest_update_time",
            self.project_id,
            first.total_num,
            self.settings.max_offset,
        )
        self.stats.slices = 0
        reached: list[array[int]] = []
        pending = [(low, high)]
        while pending:
            start, end = pending.pop()
            params = [*base, (TIME_FILTER[0], start), (TIME_FILTER[1], end)]
            head = await self._first_page(params)
            total = head.page.total_num
            last = start >= end  # a range of one millisecond cannot be split further
            if self._within_reach(total):
                try:
                    reached.append(await self._crawl(params, head))
                    self.stats.slices += 1
                    continue
                except _PastCeiling:
                    if last:
                        raise DataLossError(
                            f"the records with latest_update_time {start} go on past the "
                            f"offset ceiling although their total_num said {total}; the range "
                            "cannot be split further",
                            project_id=self.project_id,
                            offset=self.settings.max_offset,
                        ) from None
                    self._past_ceiling(total)
            if last:
                raise DataLossError(
                    f"{total} records share latest_update_time {start}: more than "
                    "offset paging can reach, and the range cannot be split further",
                    project_id=self.project_id,
                    offset=0,
                )
            middle = (start + end) // 2
            pending += [(middle + 1, end), (start, middle)]
        whole = await self._read(0, self.params, first=True)  # what the query holds now
        self.total_num = self.stats.total_num = whole.page.total_num
        self._check_slices(reached, whole.page.total_num, (low, high))

    def _check_slices(self, reached: list[array[int]], total: int, span: tuple[int, int]) -> None:
        """The slices' proven records against the whole query's latest ``total_num``.

        Counted by position within each slice (a record listed twice by the server counts
        twice, as in ``total_num``), a record seen in two slices once (its
        latest_update_time changed between their reads). Fewer than the total, beyond the
        tolerance: records no slice can reach (or added while the slices were read), a loud
        failure. More: records deleted since their slice was read."""
        joined: array[int] = array("q")
        for keys in reached:
            joined.extend(keys)
        listed = len(joined)
        within = sum(len(keys) - _distinct(keys) for keys in reached)
        held = _distinct(joined) + within
        del joined
        if listed > held:
            self.stats.drift(
                f"{listed - held} records were seen in two time ranges (their "
                "latest_update_time changed while the query was read)"
            )
        if held == total:
            return
        if held > total:
            self.stats.drift(
                f"the time ranges held {held} records; the query's total_num fell to {total} "
                "while they were read"
            )
            return
        self.stats.total_num_mismatch = Mismatch(total, held, 1, (total,))
        tolerance = self.settings.total_tolerance
        if not tolerance.allows(total, held):
            raise DataLossError(
                f"the time ranges hold {held} records but the query holds {total} (its "
                f"total_num, read after them): {_beyond(total, held, tolerance)} records "
                f"have no latest_update_time in {span[0]}..{span[1]}, or were added while "
                "the ranges were read, and no range can reach them; nothing was published "
                f"for this project ({setting('total_num_tolerance')} accepts a gateway known to "
                "miscount)",
                project_id=self.project_id,
                offset=0,
            )
        log.warning(
            "project %s: the time ranges hold %d records and total_num says %d: accepted by %s %s",
            self.project_id,
            held,
            total,
            name("total_num_tolerance"),
            self.settings.total_tolerance,
        )

    async def _crawl(self, params: list[tuple[str, QueryValue]], first: _Read) -> array[int]:
        """One query proven complete: the keys of its records, in list order."""
        while True:
            try:
                return await self._crawl_chain(params, first)
            except _Replan as replan:
                self._replans += 1
                if self._replans > MAX_REPLANS:
                    raise DataLossError(
                        f"the page size the server serves keeps changing (last {replan.size} "
                        f"records, reading with {self.size}): re-planned "
                        f"{MAX_REPLANS} times without a stable page size",
                        project_id=self.project_id,
                    ) from None
                self._cap(replan.size)
                self.stats.drift(f"re-planned with page size {replan.size}")
                first = await self._read(0, params, first=True)

    async def _crawl_chain(self, params: list[tuple[str, QueryValue]], first: _Read) -> array[int]:
        chain = Chain(
            self.size,
            self.max_index,
            lookahead=self.settings.concurrency,
            accepts=self.settings.total_tolerance.allows,
        )
        held: dict[int, _Held] = {}

        async def accept(index: int, read: _Read) -> None:
            page = read.page
            records = page.records
            if len(records) > read.size:  # more than a capped server serves
                self._oversize = True
                return
            self.stats.pages += 1
            if chain.add(index, self._summary(read)):
                self.stats.pages_reread += 1
                old = held.pop(index, None)
                if old is not None:  # its boundary was never proven: keep the record
                    await self.emit(old.page.hand_off(0, [old.record]))
            start = 0
            if index > 0 and records:
                # keep the record and where it came from, not the page's other records
                held[index] = _Held(replace(page, records=[]), records[0])
                records, start = records[1:], 1
            await self.emit(page.hand_off(start, records))

        def accept_probe(index: int, read: _Read) -> None:
            self.stats.probes += 1
            chain.add_probe(index, self._summary(read))

        if first.size != self.size:  # the size changed after it was read
            first = await self._read(0, params, first=True)
        await accept(0, first)
        rounds = 0
        while True:
            if self._oversize:
                self._oversize = False
                await self._release(held)
                raise _Replan(self.settings.page_size)
            state = chain.state()
            if state.refuted is not None:
                raise self._refuted(state.refuted)
            if state.complete:
                assert state.end_index is not None
                moved = await asyncio.to_thread(_find_moved, chain, state.end_index)
                if not moved:
                    break
                state = chain.state()
            beyond = [offset for _, offset in state.probes if offset > self.settings.max_offset]
            if beyond or (state.ceiling and not state.wanted and not state.probes):
                raise _PastCeiling
            for index in state.wanted:
                cap = chain.cap_suspected(index)
                if cap is not None and cap < self.size:
                    await self._release(held)
                    raise _Replan(cap)
            if state.repairs or state.probes:
                rounds += 1
                self._repair_round(chain, state, rounds)
            await self._fetch_many(chain, state, params, accept, accept_probe)

        assert state.end_index is not None
        if state.mismatch is not None:
            self.stats.total_num_mismatch = state.mismatch
            log.warning(
                "project %s: %s; accepted by %s %s",
                self.project_id,
                state.mismatch.describe(),
                name("total_num_tolerance"),
                self.settings.total_tolerance,
            )
        return await self._finish(chain, state.end_index, held)

    async def _release(self, held: dict[int, _Held]) -> None:
        """Hand on the overlap records held back: the crawl starts over (re-planned), and
        what was read stays read."""
        for item in held.values():
            await self.emit(item.page.hand_off(0, [item.record]))

    def _refuted(self, refuted: Mismatch) -> DataLossError:
        """The list provably ended where ``total_num`` says it goes on."""
        self.stats.total_num_mismatch = refuted
        return DataLossError(
            f"{refuted.describe()}. A gateway that stops serving records there "
            "and one whose total_num is wrong for the whole crawl look the same from "
            "here; nothing was published for this project "
            f"({setting('total_num_tolerance')} accepts a gateway known to miscount)",
            project_id=self.project_id,
            offset=refuted.records,
        )

    def _repair_round(self, chain: Chain, state: ChainState, rounds: int) -> None:
        """Count a round of re-reads and end probes; past the limit, the crawl is unproven."""
        for repair in state.repairs:
            self.stats.repair(repair.kind)
        chain.flaky += sum(r.kind == "short" for r in state.repairs)
        if rounds > self.settings.max_repair_rounds:
            unproven = state.repairs or tuple(
                Repair("end", i, _end_detail(chain, i)) for i, _ in state.probes
            )
            raise DataLossError(
                _unproven(unproven, rounds - 1, self.stats.pages_reread),
                project_id=self.project_id,
                offset=page_offset(unproven[0].index, self.size),
            )
        log.debug(
            "project %s: round %d: %d pages and %d end probes to read (%s)",
            self.project_id,
            rounds,
            len(state.wanted),
            len(state.probes),
            "; ".join(r.detail for r in state.repairs[:3]) or "end of the list",
        )
        if any(r.kind == "gap" for r in state.repairs):
            chain.note_gap_round()

    async def _finish(self, chain: Chain, end: int, held: dict[int, _Held]) -> array[int]:
        """Emit the held overlap records the chain does not prove read; say what was seen.
        The keys of the chain's records, in list order."""
        keys = chain.view_keys(end)
        distinct = _distinct(keys) if self._repeats else len(keys)
        self.stats.identical_rows += len(keys) - distinct
        self.proven_records += distinct
        for index, item in sorted(held.items()):
            previous = chain.pages.get(index - 1)
            # the records of the page before that were emitted: all but its own held first
            emitted = previous.keys[1 if index > 1 else 0 :] if previous is not None else ()
            if not (index <= end and self._key(item.record) in emitted):
                await self.emit(item.page.hand_off(0, [item.record]))
        if chain.beyond_end(end):
            self.stats.drift("the list shrank while it was read (pages past its new end)")
        totals = chain.totals
        if len(totals) > 1:
            self.stats.drift(f"total_num changed during the crawl ({min(totals)}..{max(totals)})")
        if self.stats.repairs:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.stats.repairs.items()))
            self.stats.drift(
                f"pages were read again to prove the crawl complete ({kinds}; "
                f"{self.stats.pages_reread} pages re-read, {self.stats.probes} end probes)"
            )
        return keys

    def _key(self, record: Any) -> int:
        return any_key(record, self.key_fields)

    async def _fetch_many(
        self,
        chain: Chain,
        state: ChainState,
        params: list[tuple[str, QueryValue]],
        accept: Callable[[int, _Read], Awaitable[None]],
        accept_probe: Callable[[int, _Read], None],
    ) -> None:
        jobs: Iterator[tuple[bool, int, int]] = iter(
            [(True, i, offset) for i, offset in state.probes]
            + [(False, i, chain.offset(i)) for i in state.wanted]
        )

        async def worker() -> None:
            for probe, index, offset in jobs:
                read = await self._read(offset, params)
                if probe:
                    accept_probe(index, read)
                else:
                    await accept(index, read)

        workers = min(self.settings.concurrency, len(state.wanted) + len(state.probes))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())


def _find_moved(chain: Chain, end: int) -> bool:
    """Records seen twice in the finished chain (runs in a thread: a pass over every key).

    A quick check first: in the usual case every key is unique and that is all."""
    keys = chain.view_keys(end)
    if not _repeats(keys):
        return False
    del keys
    return bool(chain.note_moved(end))


def _beyond(total: int, held: int, tolerance: TotalTolerance) -> str:
    """How many records the total says are missing, and how many the tolerance leaves."""
    missing, covered = total - held, tolerance.limit(total)
    if not covered:
        return str(missing)
    return f"{missing} (at least {missing - covered} beyond the tolerance of {tolerance})"


def _distinct(keys: array[int]) -> int:
    """How many different keys: a set up to ``SET_CHECK_KEYS`` keys, else Arrow."""
    if len(keys) <= memory.SET_CHECK_KEYS:
        return len(set(keys))
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.Array.from_buffers(pa.int64(), len(keys), [None, pa.py_buffer(keys)])
    return int(pc.count_distinct(values).as_py())


def _repeats(keys: array[int]) -> bool:
    """Whether a key repeats: with a set of them up to ``SET_CHECK_KEYS`` keys (importing
    ``pyarrow.compute`` costs 60-90 ms of CPU, more than the set takes at 100,000 keys);
    beyond, by sorting a copy with Arrow and comparing neighbours (24 bytes a key where a
    set takes 100; ``pc.unique``'s hash table took 70 MB at 1,000,000)."""
    if len(keys) <= memory.SET_CHECK_KEYS:
        return len(set(keys)) < len(keys)
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.Array.from_buffers(pa.int64(), len(keys), [None, pa.py_buffer(keys)])
    ordered = pc.take(values, pc.sort_indices(values))
    del values
    return bool(pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))).as_py())


def _end_detail(chain: Chain, index: int) -> str:
    page = chain.pages[index]
    return (
        f"the page at offset {page.offset} held {page.length} of {page.size} records, but its "
        f"total_num ({page.total_num}) and the end probes do not agree on where the list ends"
    )


def _unproven(repairs: tuple[Repair, ...], rounds: int, reread: int) -> str:
    """What the crawl could not prove, for the error."""
    shown = "; ".join(r.detail for r in repairs[:3])
    more = f" (and {len(repairs) - 3} more)" if len(repairs) > 3 else ""
    return (
        f"cannot prove the crawl complete after {rounds} rounds of re-reading "
        f"({reread} pages re-read): {shown}{more}. The list kept changing or the server "
        "answers inconsistently; nothing was published for this project "
        f"({setting('max_repair_rounds')} raises the limit)"
    )
