"""Offset/limit arithmetic and the completeness check of one crawl. Pure: no I/O.

Pages overlap by one record: page ``i`` starts at offset ``i * (limit - 1)``, so the
first record of page ``i + 1`` is, when nothing moved, the last record of page ``i``.
That overlap is what proves a crawl complete while the list may change under it:

    If, for every pair of neighbouring pages, the first record of the later page is one of
    the last records of the earlier page, and the chain from offset 0 ends in a page that
    reached the end of the list, then every record that existed for the whole crawl was
    read (assuming the server keeps existing records in a stable relative order).

A gap between two pages (inserts or deletes shifted the list between their requests) is
repaired by re-reading a window of pages before it. The shift that caused a gap can lie
anywhere before it, and re-reading may move the gap down, so the window doubles with every
round of repairs: after a few rounds a round re-reads the whole list, which converges as
soon as the list holds still for the length of one round.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "TAIL_KEYS",
    "Chain",
    "ChainState",
    "PageSummary",
    "page_offset",
    "pages_needed",
    "reachable_pages",
]

TAIL_KEYS = 32
"""How many keys at the end of a page a later page may start at without a repair."""


def page_offset(index: int, limit: int) -> int:
    """Offset of page ``index``: pages overlap by one record."""
    return index * (limit - 1)


def pages_needed(total: int, limit: int) -> int:
    """Pages to read ``total`` records with one-record overlaps."""
    if total <= 0:
        return 1
    if total <= limit:
        return 1
    return 1 + -(-(total - limit) // (limit - 1))


def reachable_pages(limit: int, max_offset: int) -> int:
    """How many pages offset paging can reach before ``offset`` exceeds ``max_offset``."""
    return max_offset // (limit - 1) + 1


@dataclass(frozen=True, slots=True)
class PageSummary:
    """What the completeness check needs to know about one page, not its records."""

    index: int
    limit: int
    length: int
    total_num: int
    first_key: int | None
    last_key: int | None
    tail_keys: frozenset[int]

    @property
    def offset(self) -> int:
        return page_offset(self.index, self.limit)

    @property
    def reaches_end(self) -> bool:
        """The page saw the end of the list when it was read."""
        return self.length < self.limit or self.offset + self.length >= self.total_num

    def continues(self, later: PageSummary) -> bool:
        """``later`` starts inside this page's tail: no record can fall between them."""
        if later.length == 0:
            return self.reaches_end
        return later.first_key is not None and later.first_key in self.tail_keys


@dataclass(frozen=True, slots=True)
class ChainState:
    complete: bool
    end_index: int | None
    wanted: tuple[int, ...]
    gaps: tuple[int, ...]


@dataclass(slots=True)
class Chain:
    """The pages read so far for one query, and what is still needed to finish."""

    limit: int
    max_index: int
    pages: dict[int, PageSummary] = field(default_factory=dict)
    repair_rounds: int = 0
    reread: int = 0

    def add(self, page: PageSummary) -> PageSummary | None:
        """Record ``page``; return the page it replaces, if it was read before."""
        old = self.pages.get(page.index)
        if old is not None:
            self.reread += 1
        self.pages[page.index] = page
        return old

    def boundary_ok(self, index: int) -> bool:
        """Pages ``index`` and ``index + 1`` are both read and continue each other."""
        earlier = self.pages.get(index)
        later = self.pages.get(index + 1)
        return earlier is not None and later is not None and earlier.continues(later)

    def _walk(self) -> Iterator[tuple[int, str]]:
        """Walk from page 0: yield (index, 'missing' | 'gap' | 'end')."""
        index = 0
        while True:
            page = self.pages.get(index)
            if page is None:
                yield index, "missing"
                return
            if page.reaches_end:
                yield index, "end"
                return
            if index + 1 > self.max_index:
                yield index, "ceiling"
                return
            later = self.pages.get(index + 1)
            if later is None:
                yield index + 1, "missing"
            elif not page.continues(later):
                yield index, "gap"
            index += 1

    def exact(self, index: int) -> bool:
        """Page ``index + 1`` starts exactly at the last record of page ``index``."""
        earlier = self.pages.get(index)
        later = self.pages.get(index + 1)
        return (
            earlier is not None
            and later is not None
            and later.first_key is not None
            and later.first_key == earlier.last_key
        )

    def planned(self) -> int:
        """Pages the largest ``total_num`` seen so far asks for (within the ceiling)."""
        total = max((p.total_num for p in self.pages.values()), default=0)
        return min(pages_needed(total, self.limit), self.max_index + 1)

    def state(self) -> ChainState:
        wanted: set[int] = {i for i in range(self.planned()) if i not in self.pages}
        gaps: list[int] = []
        end: int | None = None
        for index, what in self._walk():
            if what == "missing":
                wanted.add(index)
            elif what == "gap":
                gaps.append(index)
                width = 2**self.repair_rounds
                wanted.update(range(max(0, index + 1 - width), index + 2))
            elif what == "end":
                end = index
            else:  # ceiling: the list goes on past what offset paging can reach
                end = None
        complete = end is not None and not wanted and not gaps
        return ChainState(complete, end, tuple(sorted(wanted)), tuple(gaps))

    def note_repair(self) -> None:
        """A round of repairs starts: the next round's windows are twice as wide."""
        self.repair_rounds += 1

    def beyond_end(self, end_index: int) -> list[int]:
        """Pages read past the end of the finished chain (the list shrank while read)."""
        return sorted(i for i in self.pages if i > end_index)
