"""Offset/limit arithmetic and the completeness proof of one crawl. Pure: no I/O.

Pages overlap by one record: with page size ``s``, page ``i`` starts at offset
``i * (s - 1)``, so the first record of page ``i + 1`` is, when nothing moved, the last
record of page ``i``. The reference promises nothing about page sizes, ``total_num`` or a
stable order, so the proof rests only on the records themselves:

- **Continuity.** The first record of page ``i + 1`` must be one of page ``i``'s records.
  If it is not (records were deleted before the boundary, or the page came back short),
  that is a *gap*: a window of pages around it is read again, twice as wide each round.
- **The end is read, never inferred.** A page shorter than the page size ends the list only
  when a read past it, sent after the page was answered, finds nothing after its last
  record, with a ``total_num`` of its own that agrees with the end: one request more per
  crawl. The read starts at the page's last record and must hold that record alone (a
  transient empty answer cannot pass for the end); one more such read is asked for every
  page this server has cut short (up to 8). A read that finds more means the page was cut
  short, one without its last record that the list moved under it: the page is read
  again. A read whose ``total_num`` disagrees has the short page read again and asked
  once more (a list that shrank shows it there); when two such reads disagree, the end
  stands only if the caller's tolerance accepts every total they gave, and is refuted
  otherwise (a gateway that stops serving, or a ``total_num`` that is wrong for the whole
  crawl). A full page never ends the list, whatever ``total_num`` says.
- **Moves into the part already read.** Inserts before a page boundary, between the reads
  of its two pages, show as the later page starting inside (not at the end of) the earlier
  one. Those records may be new, or may be records that moved there from the part not yet
  read, which the crawl would then miss. Every page up to that boundary is read again,
  after the later page, until no such shift remains.
- **Order instability.** A record seen on two pages of the final chain, outside the
  overlap of two neighbours, moved while the list was read (a server sorting on a
  non-unique or changing key). Every page up to the later sighting is read again.

A natural key seen twice within one response is the server's data, not movement: such
keys are left out of the search for moved records.

Assumption, the only one: a change that leaves none of these traces cannot be seen by an
offset reader. That takes, between the reads of two neighbouring pages, a record moving
into the part already read at the same moment as another record there is deleted.
"""

from __future__ import annotations

import operator
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Chain",
    "ChainState",
    "Mismatch",
    "PageRead",
    "Repair",
    "page_offset",
    "pages_needed",
    "probe_offset",
    "reachable_pages",
]


MISMATCH_ANSWERS = 2
"""Empty reads past an end, each after a read of its short page, whose ``total_num``
disagrees with it: then the end is decided by the tolerance (accepted or refuted)."""

MAX_EXTRA_PROBES = 8
"""At most this many more reads past the end on a server that cuts pages short."""


def page_offset(index: int, size: int) -> int:
    """Offset of page ``index``: pages overlap by one record."""
    return index * (size - 1)


def pages_needed(total: int, size: int) -> int:
    """Pages to read ``total`` records with one-record overlaps (at least one)."""
    if total <= size:
        return 1
    return 1 + -(-(total - size) // (size - 1))


def probe_offset(end: int) -> int:
    """Where the read that proves an end starts: at the last record (0 for an empty list)."""
    return max(end - 1, 0)


def reachable_pages(size: int, max_offset: int) -> int:
    """How many pages offset paging can reach before ``offset`` exceeds ``max_offset``."""
    return max_offset // (size - 1) + 1


@dataclass(frozen=True, slots=True)
class PageRead:
    """One response, reduced to what the proof needs: its records' keys and when it came.

    ``sent`` and ``received`` are ticks of the crawl's own clock (one tick per request
    sent or answered), so "served after" is decidable without wall-clock time.
    """

    offset: int
    size: int
    keys: array[int]
    total_num: int
    sent: int
    received: int

    @property
    def length(self) -> int:
        return len(self.keys)

    @property
    def short(self) -> bool:
        return len(self.keys) < self.size

    @property
    def end(self) -> int:
        """The offset just past this page's last record."""
        return self.offset + len(self.keys)

    @property
    def repeats_keys(self) -> bool:
        """A natural key appears twice within this response."""
        return len(set(self.keys)) < len(self.keys)

    def after(self, other: PageRead) -> bool:
        """This page was requested after ``other`` was answered: served later for sure."""
        return self.sent > other.received


@dataclass(frozen=True, slots=True)
class Repair:
    """Why pages are read again: a kind and where, for the report and the error."""

    kind: str  # "gap" | "shift" | "moved" | "short" | "end"
    index: int
    detail: str


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where the list provably ended and the ``total_num`` that the reads past it gave."""

    total_num: int
    """The total of the latest such read (the others are in ``totals``)."""
    records: int
    """The end: how many records the list holds, by position."""
    answers: int
    totals: tuple[int, ...]

    def as_dict(self) -> dict[str, int]:
        return {"total_num": self.total_num, "records": self.records, "answers": self.answers}

    def describe(self) -> str:
        said = (
            str(self.total_num)
            if len(set(self.totals)) == 1
            else f"{min(self.totals)}..{max(self.totals)}"
        )
        return (
            f"total_num said {said} but the list ended after {self.records} records: "
            f"{self.answers} reads from its last record (offset {max(self.records - 1, 0)}), "
            "each after a read of the page that ends there, found nothing after it and gave "
            "that total"
        )


@dataclass(slots=True)
class _Tally:
    """The reads past one short page: how many agree, disagree, came back empty."""

    agreeing: int = 0
    disagreeing: int = 0
    empty: int = 0
    cut: bool = False


@dataclass(frozen=True, slots=True)
class ChainState:
    """Where a chain stands: complete or not, and which pages it still needs."""

    complete: bool
    end_index: int | None
    wanted: tuple[int, ...]
    probes: tuple[tuple[int, int], ...]
    """(page index, offset) of each end probe to send."""
    repairs: tuple[Repair, ...]
    ceiling: bool = False
    mismatch: Mismatch | None = None
    """The end was decided by the tolerance: the totals the reads past it gave."""
    refuted: Mismatch | None = None
    """The end disagrees with ``total_num`` beyond the tolerance: the crawl cannot be
    proven complete."""


@dataclass(slots=True)
class Chain:
    """The pages of one query read so far, and what is still needed to prove them complete.

    Pages are indexed by their place in the geometry of ``size``; only the latest read of
    each page counts. ``obligations`` are windows of pages that must be read again (after a
    shift: every page up to it; after a record seen twice: the pages between the two
    sightings), with the tick they must be read after.
    """

    size: int
    max_index: int
    lookahead: int = 1
    accepts: Callable[[int, int], bool] = operator.eq
    """Whether a ``total_num`` is accepted for a list that provably holds so many records
    (exact by default; a tolerance for a gateway known to miscount)."""
    pages: dict[int, PageRead] = field(default_factory=dict)
    probes: dict[int, list[PageRead]] = field(default_factory=dict)
    obligations: dict[tuple[int, int], int] = field(default_factory=dict)
    gap_rounds: int = 0
    short_lengths: dict[int, list[int]] = field(default_factory=dict)
    longest: int = 0
    """The most records any response of this chain held."""
    totals: set[int] = field(default_factory=set)
    """Every ``total_num`` answered: more than one, and it proves nothing alone."""
    flaky: int = 0
    """Short pages seen that did not end the list: each asks one more agreeing read past
    the end, since a server that cuts pages short may also answer one read empty."""
    disagreed: dict[int, dict[int, int]] = field(default_factory=dict)
    """End offset -> the reads past it (by the tick they were sent) that found nothing
    after it but a ``total_num`` that disagrees, with that total."""

    # -- recording ----------------------------------------------------------------------

    def offset(self, index: int) -> int:
        return page_offset(index, self.size)

    def add(self, index: int, page: PageRead) -> bool:
        """Record the latest read of page ``index``; True when it was read before."""
        again = index in self.pages
        self.pages[index] = page
        self.longest = max(self.longest, page.length)
        self.totals.add(page.total_num)
        self.probes.pop(index, None)  # probes prove the end of one read only
        if page.short:
            self.short_lengths.setdefault(index, []).append(page.length)
        return again

    def add_probe(self, index: int, probe: PageRead) -> None:
        self.probes.setdefault(index, []).append(probe)
        self.longest = max(self.longest, probe.length)
        self.totals.add(probe.total_num)

    def _short(self, index: int, page: PageRead, later: PageRead | None) -> str:
        """A short page: 'end' of the list (or 'accepted' by the tolerance, or 'refuted'),
        'cut' short while the list goes on, 'probe' (not known yet), 'reread' (a read past
        it disagreed), or 'recheck' (the page after it holds records, but was read before
        it: the list may have shrunk since, so that page is read again)."""
        if later is not None and later.keys:  # a later page holds records
            return "cut" if later.after(page) else "recheck"
        return self._end_verdict(index, page)

    def _end_verdict(self, index: int, page: PageRead) -> str:
        """What the reads past a short page, sent after it, say of its end.

        Each starts at the page's last record (``probe_offset``), so a transient empty
        answer cannot pass for the end: it must hold that record and nothing after it (an
        empty list: nothing at all). More, or another record first, means the page was cut
        short or the list moved under it: 'cut'. An empty answer says nothing and is asked
        again; two have the page read again (the list may have shrunk under it). With a
        ``total_num`` that agrees: the end, once for a server that never cut a page short,
        once more for every page it did. With one that disagrees: the page is read again
        and asked once more; at ``MISMATCH_ANSWERS`` such answers (more on a server that
        cut pages short) the tolerance decides.
        """
        tally = self._tally(index, page)
        if tally.cut:
            return "cut"
        if tally.agreeing >= self._agreeing_needed():
            return "end"
        totals = self.disagreed.get(page.end, {})
        if len(totals) >= MISMATCH_ANSWERS + min(self.flaky, MAX_EXTRA_PROBES):
            accepted = all(self.accepts(t, page.end) for t in totals.values())
            return "accepted" if accepted else "refuted"
        return "reread" if tally.disagreeing or tally.empty >= MISMATCH_ANSWERS else "probe"

    def _tally(self, index: int, page: PageRead) -> _Tally:
        """The reads past a short page that were sent after it, sorted by what they say.
        Those that disagree are also kept in ``disagreed`` (by the tick they were sent, so
        counting them again adds nothing): they outlive the page's next read."""
        end = page.end
        last = self._last_key(index, page)
        tally = _Tally()
        for probe in self.probes.get(index, ()):
            if probe.offset != probe_offset(end) or not probe.after(page):
                continue
            if end and not probe.keys:  # transient, or the list shrank under the page
                tally.empty += 1
            elif probe.length != (1 if end else 0) or (end and probe.keys[0] != last):
                tally.cut = True
            elif probe.total_num == end:
                tally.agreeing += 1
            else:
                self.disagreed.setdefault(end, {})[probe.sent] = probe.total_num
                tally.disagreeing += 1
        return tally

    def _last_key(self, index: int, page: PageRead) -> int | None:
        """The key of the record just before ``page.end``: the page's last, or for an empty
        page the last of the page before it (None: not read)."""
        if page.keys:
            return page.keys[-1]
        before = self.pages.get(index - 1)
        return before.keys[-1] if before is not None and before.keys else None

    def _agreeing_needed(self) -> int:
        return 1 + min(self.flaky, MAX_EXTRA_PROBES)

    def _mismatch(self, end: int) -> Mismatch:
        totals = tuple(total for _, total in sorted(self.disagreed[end].items()))
        return Mismatch(totals[-1], end, len(totals), totals)

    def _walk(self) -> Iterator[tuple[int, str]]:
        """Walk from page 0: yield (index, 'missing' | 'empty' | 'gap' | 'ceiling' | a short
        page's verdict (``_short``)). The walk goes on past every problem it can see beyond,
        so that one round repairs them all."""
        index = 0
        while True:
            page = self.pages.get(index)
            later = self.pages.get(index + 1)
            if page is None:
                yield index, "missing"
                if later is None:
                    return
            elif page.short:
                verdict = self._short(index, page, later)
                yield index, verdict
                if verdict != "cut" or later is None or not later.keys:
                    if verdict == "cut":
                        yield index + 1, "missing"
                    return
            elif index + 1 > self.max_index:
                yield index, "ceiling"
                return
            elif later is None:
                yield index + 1, "missing"
            elif not later.keys:  # after a full page: cut short, or the list shrank
                yield index, "empty"
                index += 1
                if index + 1 not in self.pages:
                    return
            elif later.keys[0] not in page.keys:
                yield index, "gap"
            index += 1

    def _shift(self, index: int) -> bool:
        """Records were inserted (or moved) before the boundary after page ``index`` while
        its two pages were read, and page ``index`` was read first: the later page starts
        inside the earlier one (the walk found no gap), but not at its last record."""
        page, later = self.pages[index], self.pages[index + 1]
        if not later.keys or page.after(later):
            return False
        return page.keys[-1] != later.keys[0]

    def planned(self) -> int:
        """Pages the largest ``total_num`` seen asks for (a hint, within the ceiling)."""
        total = max((p.total_num for p in self.pages.values()), default=0)
        return min(pages_needed(total, self.size), self.max_index + 1)

    def state(self) -> ChainState:
        wanted: set[int] = {i for i in range(self.planned()) if i not in self.pages}
        probes: list[tuple[int, int]] = []
        repairs: list[Repair] = []
        end: int | None = None
        ceiling = False
        mismatch: Mismatch | None = None
        refuted: Mismatch | None = None
        for index, what in self._walk():
            if what == "missing":
                wanted.add(index)
                if index >= self.planned():  # pages keep coming back full: read ahead
                    wanted.update(range(index, min(index + self.lookahead, self.max_index + 1)))
            elif what == "gap":
                # the change that caused it lies anywhere before it, and pages after it read
                # before the repair may be as stale: the window grows both ways each round
                width = 2**self.gap_rounds
                last = min(index + 1 + width, max(self.pages))
                wanted.update(range(max(0, index + 1 - width), last + 1))
                repairs.append(Repair("gap", index, self._gap_detail(index)))
            elif what == "empty":  # read both again: the full page may be the stale one
                wanted.update((index, index + 1))
                repairs.append(
                    Repair(
                        "short",
                        index + 1,
                        f"the page at offset {self.offset(index + 1)} came back empty after a "
                        "full page",
                    )
                )
            elif what == "probe":
                page = self.pages[index]
                agreeing = self._tally(index, page).agreeing
                at = probe_offset(page.end)
                probes += [(index, at)] * max(1, self._agreeing_needed() - agreeing)
            elif what == "reread":
                wanted.add(index)
                page = self.pages[index]
                repairs.append(
                    Repair(
                        "end",
                        index,
                        f"the reads from the last record of the page at offset {page.offset} "
                        "came back empty, or gave a total_num that disagrees with its end",
                    )
                )
            elif what == "refuted":
                refuted = self._mismatch(self.pages[index].end)
            elif what == "recheck":
                wanted.add(index + 1)
                repairs.append(
                    Repair(
                        "short",
                        index,
                        f"the page at offset {self.offset(index)} came back short, but the page "
                        "after it was read earlier and holds records",
                    )
                )
            elif what == "cut":
                wanted.add(index)
                page = self.pages[index]
                repairs.append(
                    Repair(
                        "short",
                        index,
                        f"the page at offset {page.offset} held {page.length} of {page.size} "
                        "records and the list goes on after it",
                    )
                )
            elif what in ("end", "accepted"):
                end = index
                if what == "accepted":
                    mismatch = self._mismatch(self.pages[index].end)
            else:
                ceiling = True
        if end is not None and not wanted and not probes and not repairs:
            repairs += self._head_repairs(end, wanted)
        complete = end is not None and not wanted and not probes and not repairs
        return ChainState(
            complete,
            end,
            tuple(sorted(wanted)),
            tuple(probes),
            tuple(repairs),
            ceiling,
            mismatch,
            refuted,
        )

    def _gap_detail(self, index: int) -> str:
        page, later = self.pages[index], self.pages[index + 1]
        return (
            f"the page at offset {later.offset} does not start inside the page at offset "
            f"{page.offset}"
        )

    def note_gap_round(self) -> None:
        """A round of gap repairs starts: the next round's windows are twice as wide."""
        self.gap_rounds += 1

    # -- shifts and moves: pages to read again after a tick -------------------------------

    def _head_repairs(self, end: int, wanted: set[int]) -> list[Repair]:
        """Shifts and moves in the finished chain; adds the pages to read again."""
        repairs: list[Repair] = []
        for index in range(end):
            if self._shift(index):
                later = self.pages[index + 1]
                self._oblige(0, index, later.received)
                repairs.append(
                    Repair(
                        "shift",
                        index,
                        f"records were inserted or moved before offset {later.offset} while "
                        "it was read",
                    )
                )
        for (low, high), tick in list(self.obligations.items()):
            stale = [i for i in range(low, min(high, end) + 1) if not self.pages[i].sent > tick]
            if stale:
                wanted.update(stale)
            else:
                del self.obligations[low, high]
        if wanted and not repairs:
            repairs.append(Repair("shift", max(wanted), "pages read before a shift or move"))
        return repairs

    def _oblige(self, low: int, high: int, tick: int) -> None:
        """Pages ``low..high`` must be read again, each sent after ``tick``."""
        self.obligations[low, high] = max(self.obligations.get((low, high), -1), tick)

    def view_keys(self, end: int) -> array[int]:
        """The keys of the finished chain without its overlaps: each record once, unless
        a record moved while the list was read."""
        out: array[int] = array("q")
        previous: Sequence[int] = ()
        for index in range(end + 1):
            keys = self.pages[index].keys
            out.extend(keys[_overlap(previous, keys) :])
            previous = keys
        return out

    def note_moved(self, end: int) -> list[Repair]:
        """Find the records seen twice in the finished chain; the pages between the two
        sightings must be read again, after both.

        A record seen twice moved out of the part already read, or a response showed the
        list out of order: what it displaced lies between its two sightings."""
        repairs: list[Repair] = []
        for first, second, key in moved_records(self.pages[i] for i in range(end + 1)):
            latest = max(self.pages[first].received, self.pages[second].received)
            self._oblige(first, second, latest)
            repairs.append(
                Repair(
                    "moved",
                    second,
                    f"a record (key {key & 0xFFFFFFFF:08x}) was seen at offsets "
                    f"{self.pages[first].offset}.. and {self.pages[second].offset}..",
                )
            )
        return repairs

    def beyond_end(self, end_index: int) -> list[int]:
        """Pages read past the end of the finished chain (non-empty: the list shrank)."""
        return sorted(i for i, p in self.pages.items() if i > end_index and p.length)

    def cap_suspected(self, index: int) -> int | None:
        """A page read short twice with the same length while the list goes on: the
        server serves at most that many records per page."""
        lengths = self.short_lengths.get(index, [])
        if len(lengths) >= 2 and lengths[-1] == lengths[-2] >= max(self.longest, 2):
            return lengths[-1]
        return None


def moved_records(pages: Iterable[PageRead]) -> list[tuple[int, int, int]]:
    """Records seen on two pages of a chain outside their overlaps: (first page index,
    second page index, key) for each, at most one per later page.

    A page's overlap with the page before it is the run of its first records that repeat
    the earlier page's last ones, in order; everything else must be new. A key that one
    response holds twice is the server's own (two rows with one natural key): it counts as
    moved only when the chain holds it more often than any one response does.
    """
    pages = list(pages)
    most: dict[int, int] = {}
    for page in pages:
        if page.repeats_keys:
            for key, copies in Counter(page.keys).items():
                most[key] = max(most.get(key, 1), copies)
    seen: dict[int, tuple[int, int]] = {}
    """key -> (the page it was first seen on, copies seen outside overlaps)"""
    found: dict[int, tuple[int, int, int]] = {}
    previous: Sequence[int] = ()
    for index, page in enumerate(pages):
        keys = page.keys
        skip = _overlap(previous, keys)
        for key in keys[skip:]:
            first, copies = seen.get(key, (index, 0))
            seen[key] = (first, copies + 1)
            if copies + 1 > most.get(key, 1) and index not in found:
                found[index] = (first, index, key)
        previous = keys
    return sorted(found.values())


def _overlap(earlier: Sequence[int], later: Sequence[int]) -> int:
    """How many of ``later``'s first keys repeat ``earlier``'s last ones, in order."""
    if not later or not earlier:
        return 0
    try:
        start = len(earlier) - 1 - list(reversed(earlier)).index(later[0])
    except ValueError:
        return 0
    count = 0
    for a, b in zip(earlier[start:], later, strict=False):
        if a != b:
            break
        count += 1
    return count
