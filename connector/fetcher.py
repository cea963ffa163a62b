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
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .client import Page, PageRequest, PageSource
from .config import FetchSettings, RetryPolicy
from .errors import ConnectorError, DataLossError, ThrottledError
from .paging import TAIL_KEYS, Chain, PageSummary, page_offset, pages_needed, reachable_pages
from .ratelimit import RateLimiter
from .records import key_of
from .retry import retrying
from .signing import QueryValue

__all__ = ["CrawlStats", "Emit", "PageFetcher", "ProjectCrawler"]

log = logging.getLogger("connector")

Emit = Callable[[Page, int, list[Any]], Awaitable[None]]
"""Receives a page, the position in it of the first record given, and the records to store
(the overlap record at position 0 may be held back until its boundary is proven)."""

MAX_REPAIR_ROUNDS = 16
TIME_FILTER = ("start_latest_update_time", "end_latest_update_time")


@dataclass(slots=True)
class CrawlStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    pages: int = 0
    records_received: int = 0
    pages_reread: int = 0
    gaps_repaired: int = 0
    drift_reasons: list[str] = field(default_factory=list)
    slices: int = 1
    retry_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def drift_detected(self) -> bool:
        return bool(self.drift_reasons)

    def drift(self, reason: str) -> None:
        if reason not in self.drift_reasons:
            self.drift_reasons.append(reason)


class PageFetcher:
    """One page: wait for the rate limiter, send, retry what can be retried."""

    def __init__(
        self,
        source: PageSource,
        limiter: RateLimiter,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        in_flight: asyncio.Semaphore | None = None,
    ) -> None:
        self.in_flight = in_flight or asyncio.Semaphore(8)
        self.source = source
        self.limiter = limiter
        self.policy = policy
        self.sleep = sleep
        self.rng = rng or random.Random()

    async def fetch(self, request: PageRequest, stats: CrawlStats) -> Page:
        async def once() -> Page:
            try:
                async with self.in_flight:
                    await self.limiter.acquire()
                    stats.requests += 1
                    page = await self.source.get_page(request)
            except ThrottledError:
                stats.throttled += 1
                self.limiter.throttled()
                raise
            self.limiter.succeeded()
            return page

        def on_retry(error: ConnectorError, attempt: int, wait: float) -> None:
            stats.retries += 1
            kind = type(error).__name__
            stats.retry_reasons[kind] = stats.retry_reasons.get(kind, 0) + 1
            log.debug("retry %d in %.2fs: %s", attempt, wait, error)

        return await retrying(once, self.policy, on_retry=on_retry, sleep=self.sleep, rng=self.rng)


@dataclass(slots=True)
class _Held:
    page: Page
    record: Any


class ProjectCrawler:
    """Reads every record of one project's query exactly as the overlap chain demands."""

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
    ) -> None:
        self.fetcher = fetcher
        self.settings = settings
        self.key_fields = key_fields
        self.project_id = project_id
        self.params = params
        self.emit = emit
        self.stats = stats
        self.now_ms = now_ms
        self.limit = settings.page_size
        self.max_index = reachable_pages(self.limit, settings.max_offset) - 1
        self.total_num: int | None = None

    def _request(self, index: int, params: list[tuple[str, QueryValue]]) -> PageRequest:
        return PageRequest(
            self.project_id, page_offset(index, self.limit), self.limit, tuple(params)
        )

    async def run(self) -> None:
        first = await self.fetcher.fetch(self._request(0, self.params), self.stats)
        self.total_num = first.total_num
        if pages_needed(first.total_num, self.limit) - 1 <= self.max_index:
            await self._crawl(self.params, first)
            return
        await self._crawl_split(first)

    async def _crawl_split(self, first: Page) -> None:
        """The query reaches past the offset ceiling: read it in latest_update_time ranges."""
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
        covered = 0
        pending = [(low, high)]
        while pending:
            start, end = pending.pop()
            params = [*base, (TIME_FILTER[0], start), (TIME_FILTER[1], end)]
            head = await self.fetcher.fetch(self._request(0, params), self.stats)
            if pages_needed(head.total_num, self.limit) - 1 <= self.max_index:
                self.stats.slices += 1
                covered += head.total_num
                await self._crawl(params, head)
            elif start >= end:
                raise DataLossError(
                    f"{head.total_num} records share latest_update_time {start}: more than "
                    "offset paging can reach, and the range cannot be split further",
                    project_id=self.project_id,
                    offset=0,
                )
            else:
                middle = (start + end) // 2
                pending += [(middle + 1, end), (start, middle)]
        if covered < first.total_num and not self.stats.drift_detected:
            raise DataLossError(
                f"the time ranges hold {covered} records but the query holds "
                f"{first.total_num}: {first.total_num - covered} records have no "
                "latest_update_time in the searched range and cannot be reached",
                project_id=self.project_id,
                offset=0,
            )

    async def _crawl(self, params: list[tuple[str, QueryValue]], first: Page) -> None:
        chain = Chain(self.limit, self.max_index)
        held: dict[int, _Held] = {}
        totals: set[int] = set()

        async def accept(index: int, page: Page) -> None:
            records = page.records
            self.stats.pages += 1
            self.stats.records_received += len(records)
            totals.add(page.total_num)
            tail = [self._key(r) for r in records[-TAIL_KEYS:]]
            summary = PageSummary(
                index=index,
                limit=self.limit,
                length=len(records),
                total_num=page.total_num,
                first_key=self._key(records[0]) if records else None,
                last_key=tail[-1] if tail else None,
                tail_keys=frozenset(tail),
            )
            replaced = chain.add(summary)
            if replaced is not None:
                self.stats.pages_reread += 1
                old = held.pop(index, None)
                if old is not None:  # its boundary was never proven: keep the record
                    await self.emit(old.page, 0, [old.record])
            start = 0
            if index > 0 and records:
                # keep the record and where it came from, not the page's other records
                held[index] = _Held(replace(page, records=[]), records[0])
                records, start = records[1:], 1
            await self.emit(page, start, records)

        await accept(0, first)
        rounds = 0
        while True:
            state = chain.state()
            if state.complete:
                break
            if not state.wanted:
                raise DataLossError(
                    "the list goes on past the offset ceiling although its first page said "
                    "it would not; rerun (the list changed during the crawl)",
                    project_id=self.project_id,
                    offset=page_offset(self.max_index, self.limit),
                )
            if state.gaps:
                self.stats.gaps_repaired += len(state.gaps)
                rounds += 1
                if rounds > MAX_REPAIR_ROUNDS:
                    raise DataLossError(
                        f"the list kept changing: {len(state.gaps)} gaps remain after "
                        f"{MAX_REPAIR_ROUNDS} rounds of re-reading",
                        project_id=self.project_id,
                        offset=page_offset(state.gaps[0], self.limit),
                    )
                chain.note_repair()
            await self._fetch_many(state.wanted, params, accept)

        assert state.end_index is not None
        for index, item in sorted(held.items()):
            if index <= state.end_index and chain.boundary_ok(index - 1):
                if not chain.exact(index - 1):
                    self.stats.drift("records were inserted before a page while it was read")
            else:
                await self.emit(item.page, 0, [item.record])
        beyond = [i for i in chain.beyond_end(state.end_index) if chain.pages[i].length]
        if beyond:
            self.stats.drift("the list shrank while it was read (pages past its new end)")
        if len(totals) > 1:
            self.stats.drift(f"total_num changed during the crawl ({min(totals)}..{max(totals)})")
        if self.stats.gaps_repaired:
            self.stats.drift(
                f"records moved between neighbouring pages while they were read: "
                f"{self.stats.gaps_repaired} gaps, {chain.reread} pages re-read"
            )

    def _key(self, record: Any) -> int:
        if isinstance(record, dict):
            return key_of(record, self.key_fields)
        return hash(repr(record))

    async def _fetch_many(
        self,
        indexes: tuple[int, ...],
        params: list[tuple[str, QueryValue]],
        accept: Callable[[int, Page], Awaitable[None]],
    ) -> None:
        todo: Iterator[int] = iter(indexes)

        async def worker() -> None:
            for index in todo:
                page = await self.fetcher.fetch(self._request(index, params), self.stats)
                await accept(index, page)

        workers = min(self.settings.concurrency, len(indexes))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
