"""When projects read: as many at once as their memory estimates fit in the budget.

A project asks for its first page (which says how many records follow) before it may
read the rest; a bounded number do so at once (``discovering_places``). With its first
page in, it waits in line for its estimate (``memory.Footprint``) to fit in the budget,
and takes a reading place. When its last page is in it gives back its place and the
bytes of its pages, before it finishes and publishes its file, so the shared rate limiter
finds the next projects' pages waiting; the bytes it holds until its file is closed (its
row group, the Parquet writer, the completeness chain) stay counted until then.

- The line is first come, first served: a large project is never overtaken forever by
  small ones, and projects start in the order their first pages came in.
- At least one project always reads: one whose estimate exceeds the whole budget reads
  when nothing else holds any of it, alone (``Admitted.oversized``).
- ``cap`` (``--parallel-projects``) bounds the projects reading at once, whatever fits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from connector.job.memory import Footprint

__all__ = ["DISCOVERY_CEILING", "Admission", "Admitted", "discovering_places"]

DISCOVERY_CEILING = 64
"""At most this many projects ask for their first page at once: first pages are served
before other pages, and more of them than can start reading soon only move work forward
that then waits."""


def discovering_places(budget: int, small: Footprint, cap: int | None) -> int:
    """Projects that may ask for their first page at once: as many as could read at once
    if every project were ``small`` (one page), within the cap and ``DISCOVERY_CEILING``.

    A project waiting for a reading place holds its first page, a ``1 / (3 x concurrency)``
    share of ``small``'s pages: the first pages waiting add at most that share of the
    budget to it.
    """
    places = max(1, budget // max(small.total, 1))
    return min(places, cap if cap is not None else DISCOVERY_CEILING, DISCOVERY_CEILING)


class _Waiter:
    __slots__ = ("admitted", "need", "ready")

    def __init__(self, admitted: Admitted, need: Footprint) -> None:
        self.admitted = admitted
        self.need = need
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Admission:
    """The budget, the cap and the line of projects waiting to read (module doc)."""

    def __init__(self, budget: int, *, cap: int | None, discovering: int) -> None:
        self.budget = budget
        self.cap = cap
        self._discovering = asyncio.Semaphore(discovering)
        self._line: deque[_Waiter] = deque()
        self.held = 0
        """Bytes of the estimates held now, by reading and finishing projects."""
        self.holders = 0
        """Projects holding some of the budget (reading or finishing)."""
        self.reading = 0
        self.peak_reading = 0
        """The largest number of projects that read at once."""
        self.admitted = 0
        """Projects admitted so far: each one's ``Admitted.turn``."""

    @contextlib.asynccontextmanager
    async def project(self) -> AsyncIterator[Admitted]:
        """One project's stay: its discovering place first; everything given back at the end."""
        await self._discovering.acquire()
        admitted = Admitted(self)
        try:
            yield admitted
        finally:
            admitted.leave()

    def _fits(self, need: Footprint) -> bool:
        if self.cap is not None and self.reading >= self.cap:
            return False
        return self.holders == 0 or self.held + need.total <= self.budget

    def _serve(self) -> None:
        """Admit the projects at the head of the line while they fit."""
        while self._line:
            waiter = self._line[0]
            if waiter.ready.cancelled():  # its task was cancelled while it waited
                self._line.popleft()
                continue
            if not self._fits(waiter.need):
                return
            self._line.popleft()
            waiter.admitted._granted(waiter.need)
            waiter.ready.set_result(None)

    def _take(self, need: Footprint) -> int:
        self.held += need.total
        self.holders += 1
        self.reading += 1
        self.peak_reading = max(self.peak_reading, self.reading)
        self.admitted += 1
        return self.admitted - 1

    def _give(self, size: int, *, reading: bool, last: bool) -> None:
        self.held -= size
        self.reading -= 1 if reading else 0
        self.holders -= 1 if last else 0
        self._serve()


class Admitted:
    """One project's places: discovering, then reading (its footprint held), then its
    finishing bytes only, then none."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._discovering = True
        self._reading: Footprint | None = None
        self._finishing = 0
        self._holding = False
        self.footprint: Footprint | None = None
        """The estimate the project was admitted with."""
        self.oversized = False
        """Its estimate exceeds the whole budget: it reads alone."""
        self.turn: int | None = None
        """Its place in the order of admission (0: the first project to read)."""

    @property
    def budget(self) -> int:
        return self._admission.budget

    async def read_on(self, need: Footprint) -> None:
        """The first page is in: wait until ``need`` fits, then free the discovering place."""
        admission = self._admission
        waiter = _Waiter(self, need)
        admission._line.append(waiter)
        admission._serve()
        try:
            await waiter.ready
        except asyncio.CancelledError:
            if waiter in admission._line:
                admission._line.remove(waiter)
                admission._serve()
            raise
        finally:
            self._free_discovering()

    def _granted(self, need: Footprint) -> None:
        self.turn = self._admission._take(need)
        self._reading, self._finishing, self._holding = need, need.finishing, True
        self.footprint = need
        self.oversized = need.total > self._admission.budget

    def read_done(self) -> None:
        """Every page is in: give back the reading place and the bytes of the pages."""
        if self._reading is not None:
            size, self._reading = self._reading.reading, None
            self._admission._give(size, reading=True, last=False)

    def leave(self) -> None:
        """The project is done (published, failed or cancelled): give back everything."""
        self._free_discovering()
        self.read_done()
        if self._holding:
            size, self._finishing, self._holding = self._finishing, 0, False
            self._admission._give(size, reading=False, last=True)

    def _free_discovering(self) -> None:
        if self._discovering:
            self._discovering = False
            self._admission._discovering.release()
