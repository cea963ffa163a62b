"""Admission by bytes: what the budget lets read at once, in which order, and cancellation.

The projects here are tasks that take their places as the pipeline's do (discovering,
read_on with an estimate, read_done, leave) and hand control back to the loop a random
number of times in between; every interleaving hypothesis draws must keep the rules.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.job.admission import DISCOVERY_CEILING, Admission, discovering_places
from connector.job.memory import Footprint

footprints = st.builds(Footprint, st.integers(0, 1_000), st.integers(0, 1_000))


class Watch:
    """What the projects saw: the estimates reading at once, checked at every step."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.reading: dict[int, Footprint] = {}
        self.finishing: dict[int, int] = {}
        self.order: list[tuple[int, int]] = []
        self.asked: list[int] = []

    def check(self) -> None:
        """A project granted its place counts at once, before its task runs again: what
        the tasks saw is part of what the admission holds."""
        admission = self.admission
        seen = sum(f.total for f in self.reading.values()) + sum(self.finishing.values())
        assert seen <= admission.held
        assert len(self.reading) + len(self.finishing) <= admission.holders
        if admission.held > admission.budget:  # only a project bigger than the budget, alone
            assert admission.holders == 1
            assert all(f.total > admission.budget for f in self.reading.values())
        if admission.cap is not None:
            assert admission.reading <= admission.cap


async def _project(
    admission: Admission, watch: Watch, number: int, need: Footprint, pauses: list[int]
) -> None:
    async with admission.project() as admitted:
        for _ in range(pauses[0]):
            await asyncio.sleep(0)
        watch.asked.append(number)
        await admitted.read_on(need)
        assert admitted.turn is not None
        watch.order.append((admitted.turn, number))
        watch.reading[number] = need
        watch.check()
        for _ in range(pauses[1]):
            await asyncio.sleep(0)
            watch.check()
        admitted.read_done()
        del watch.reading[number]
        watch.finishing[number] = need.finishing
        watch.check()
        for _ in range(pauses[2]):
            await asyncio.sleep(0)
        del watch.finishing[number]
    watch.check()


@settings(max_examples=150, deadline=None)
@given(
    budget=st.integers(1, 3_000),
    cap=st.none() | st.integers(1, 5),
    discovering=st.integers(1, 6),
    projects=st.lists(
        st.tuples(footprints, st.lists(st.integers(0, 4), min_size=3, max_size=3)),
        min_size=1,
        max_size=12,
    ),
)
def test_the_estimates_reading_at_once_fit_in_the_budget(
    budget: int,
    cap: int | None,
    discovering: int,
    projects: list[tuple[Footprint, list[int]]],
) -> None:
    async def main() -> Watch:
        admission = Admission(budget, cap=cap, discovering=discovering)
        watch = Watch(admission)
        async with asyncio.TaskGroup() as group:
            for number, (need, pauses) in enumerate(projects):
                group.create_task(_project(admission, watch, number, need, pauses))
        assert admission.held == admission.reading == 0
        assert 1 <= admission.peak_reading <= (cap or len(projects))
        return watch

    watch = asyncio.run(main())
    assert sorted(n for _, n in watch.order) == list(range(len(projects)))  # all read
    assert [n for _, n in sorted(watch.order)] == watch.asked  # first come, first served


def test_a_project_bigger_than_the_budget_waits_for_the_others_then_reads_alone() -> None:
    async def main() -> list[str]:
        admission = Admission(100, cap=None, discovering=4)
        seen: list[str] = []

        async def one(name: str, need: Footprint, hold: asyncio.Event) -> None:
            async with admission.project() as admitted:
                await admitted.read_on(need)
                seen.append(
                    f"{name} reads, {admission.reading} reading, oversized {admitted.oversized}"
                )
                await hold.wait()
                admitted.read_done()

        small_done, big_done = asyncio.Event(), asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(one("small", Footprint(30, 30), small_done))
            await asyncio.sleep(0)
            group.create_task(one("big", Footprint(150, 50), big_done))
            group.create_task(one("after", Footprint(10, 10), big_done))
            for _ in range(5):
                await asyncio.sleep(0)
            assert seen == ["small reads, 1 reading, oversized False"]  # big waits, after too
            small_done.set()
            for _ in range(5):
                await asyncio.sleep(0)
            big_done.set()
        return seen

    assert asyncio.run(main()) == [
        "small reads, 1 reading, oversized False",
        "big reads, 1 reading, oversized True",
        "after reads, 1 reading, oversized False",
    ]


def test_a_project_cancelled_while_it_waits_leaves_the_line_and_its_places() -> None:
    async def main() -> Admission:
        admission = Admission(100, cap=None, discovering=2)
        release = asyncio.Event()

        async def one(need: Footprint) -> None:
            async with admission.project() as admitted:
                await admitted.read_on(need)
                await release.wait()

        first = asyncio.create_task(one(Footprint(80, 0)))
        waiting = asyncio.create_task(one(Footprint(50, 0)))
        for _ in range(5):
            await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        third = asyncio.create_task(one(Footprint(20, 0)))  # took the freed discovering place
        for _ in range(5):
            await asyncio.sleep(0)
        assert (admission.reading, admission.held) == (2, 100)
        release.set()
        await asyncio.gather(first, third)
        return admission

    admission = asyncio.run(main())
    assert (admission.reading, admission.held, admission.peak_reading) == (0, 0, 2)


@given(
    budget=st.integers(1, 2**40),
    small=footprints.filter(lambda f: f.total > 0),
    cap=st.none() | st.integers(1, 64),
)
def test_first_pages_asked_at_once_are_bounded_by_what_could_read(
    budget: int, small: Footprint, cap: int | None
) -> None:
    places = discovering_places(budget, small, cap)
    assert 1 <= places <= min(cap or DISCOVERY_CEILING, DISCOVERY_CEILING)
    assert places == 1 or places * small.total <= budget
