"""Drift: records inserted and deleted while a crawl pages through them."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from sim_http import aget, crawl, ids

from connector.simulator import DriftConfig, Inventory, SimulatorConfig, simulator_in_thread

ALL = "all_granted_eps"


def drifting(**drift: object) -> SimulatorConfig:
    return SimulatorConfig(seed=21, records=400, drift=DriftConfig(**drift))  # type: ignore[arg-type]


def test_naive_crawl_under_drift_and_bookkeeping() -> None:
    with simulator_in_thread(drifting(every_n_requests=2, inserts=3, deletes=2)) as sim:
        url = sim.url("p")

        async def main() -> tuple[list[str], set[int]]:
            got: list[str] = []
            totals: set[int] = set()
            async with aiohttp.ClientSession() as session:
                offset = 0
                while True:
                    params = {"offset": offset, "limit": 20, "enterprise_project_id": ALL}
                    page = (await aget(session, url, params)).json()
                    totals.add(page["total_num"])
                    got.extend(ids(page["data_list"]))
                    offset += 20
                    if offset >= page["total_num"]:
                        return got, totals

        crawled, totals = asyncio.run(main())
        inventory = sim.inventory
        events = inventory.drift_events("p")
        requests = inventory.page_requests("p")
        ever = ids(inventory.ever_records("p", enterprise_project_id=ALL))
        stable = ids(inventory.stable_records("p", enterprise_project_id=ALL))
        current = ids(inventory.records("p", enterprise_project_id=ALL))
        ever_by_id = {
            r["image_id"]: r for r in inventory.ever_records("p", enterprise_project_id=ALL)
        }

    assert len(events) == requests // 2 >= 10
    assert [e.request_number for e in events] == list(range(2, requests + 1, 2))
    assert all(len(e.inserted) == 3 and len(e.deleted) == 2 for e in events)
    assert len(totals) > 1  # total_num moves while the crawl runs

    initial = ids(
        Inventory(SimulatorConfig(seed=21, records=400)).records("p", enterprise_project_id=ALL)
    )
    inserted = {i for e in events for i in e.inserted}
    deleted = {i for e in events for i in e.deleted}
    assert set(ever) == set(initial) | inserted
    assert len(ever) == 400 + 3 * len(events)
    assert set(stable) == set(initial) - deleted
    assert set(current) == set(stable) | (inserted - deleted)
    assert [i for i in current if i in set(stable)] == stable  # stable is in serving order
    assert len(current) == 400 + len(events)

    # What a naive crawl sees: a subset of "ever", with repeats and/or skips.
    assert set(crawled) <= set(ever)
    repeated = [i for i, n in Counter(crawled).items() if n > 1]
    skipped = set(stable) - set(crawled)
    assert repeated or skipped
    # Records keep their identity and content across shifts.
    assert set(ever_by_id) == set(ever)


def test_drift_stops_after_max_events_and_a_recrawl_is_exact() -> None:
    with simulator_in_thread(
        drifting(every_n_requests=1, inserts=2, deletes=2, max_events=3)
    ) as sim:
        first = crawl(sim.url("p"), limit=50, enterprise_project_id=ALL)
        assert len(sim.inventory.drift_events("p")) == 3
        second = crawl(sim.url("p"), limit=50, enterprise_project_id=ALL)
        assert len(sim.inventory.drift_events("p")) == 3
        current = sim.inventory.records("p", enterprise_project_id=ALL)
        stable = set(ids(sim.inventory.stable_records("p", enterprise_project_id=ALL)))
        ever = sim.inventory.ever_records("p", enterprise_project_id=ALL)
    assert second == current
    assert Counter(i for i in ids(second) if i in stable) == Counter(stable)
    assert set(ids(first)) <= set(ids(ever))
    ever_by_id = {r["image_id"]: r for r in ever}
    assert all(ever_by_id[r["image_id"]] == r for r in first + second)


def test_filtered_results_follow_drift() -> None:
    with simulator_in_thread(
        drifting(every_n_requests=1, inserts=5, deletes=1, max_events=4)
    ) as sim:
        crawl(sim.url("p"), limit=20, scan_status="success")
        assert len(sim.inventory.drift_events("p")) == 4
        served = crawl(sim.url("p"), limit=20, scan_status="success")
        assert len(sim.inventory.drift_events("p")) == 4
        current = sim.inventory.records("p", enterprise_project_id=ALL)
        hidden = sim.inventory.hidden_attributes("p", enterprise_project_id=ALL)
    wanted = [
        r
        for r in current
        if r["scan_status"] == "success" and hidden[r["image_id"]].enterprise_project_id == "0"
    ]
    assert served == wanted


def test_drift_is_deterministic_and_can_be_limited_to_projects() -> None:
    config = drifting(every_n_requests=1, inserts=1, deletes=1, projects=frozenset({"moving"}))
    runs = []
    for _ in range(2):
        with simulator_in_thread(config) as sim:
            crawl(sim.url("moving"), limit=100)
            crawl(sim.url("still"), limit=100)
            runs.append(sim.inventory.drift_events("moving"))
            assert sim.inventory.drift_events("still") == ()
            assert sim.inventory.page_requests("still") > 0
    assert runs[0] == runs[1]
    assert len(runs[0]) > 0


# -- records moving to the front ---------------------------------------------------------


def test_moves_keep_identity_and_a_naive_crawl_misses_stable_records() -> None:
    with simulator_in_thread(drifting(every_n_requests=2, moves=3)) as sim:
        crawled = ids(crawl(sim.url("p"), limit=20, enterprise_project_id=ALL))
        inventory = sim.inventory
        events = inventory.drift_events("p")
        current = ids(inventory.records("p", enterprise_project_id=ALL))
        stable = ids(inventory.stable_records("p", enterprise_project_id=ALL))
        ever = ids(inventory.ever_records("p", enterprise_project_id=ALL))
    initial = ids(
        Inventory(SimulatorConfig(seed=21, records=400)).records("p", enterprise_project_id=ALL)
    )
    assert len(events) >= 10
    assert all(len(e.moved) == 3 and not e.inserted and not e.deleted for e in events)
    # Moved records existed the whole time: nothing is inserted, deleted or duplicated.
    assert stable == current and sorted(ever) == sorted(initial) == sorted(current)
    assert current != initial
    # The last event's records lead the list, the last one moved first.
    assert current[:3] == list(reversed(events[-1].moved))
    # A naive crawl loses records that moved from ahead of it to behind it.
    assert set(crawled) <= set(ever)
    assert set(stable) - set(crawled)


def test_moves_with_inserts_deletes_and_filters() -> None:
    drift = {"every_n_requests": 1, "inserts": 2, "deletes": 1, "moves": 2, "max_events": 5}
    with simulator_in_thread(drifting(**drift)) as sim:
        crawl(sim.url("p"), limit=20, scan_status="success")
        events = sim.inventory.drift_events("p")
        served = crawl(sim.url("p"), limit=20, scan_status="success")
        assert sim.inventory.drift_events("p") == events
        inventory = sim.inventory
        current = inventory.records("p", enterprise_project_id=ALL)
        filtered = inventory.records("p", scan_status="success")
        stable = ids(inventory.stable_records("p", enterprise_project_id=ALL))
        stable_filtered = ids(inventory.stable_records("p", scan_status="success"))
        ever = set(ids(inventory.ever_records("p", enterprise_project_id=ALL)))
        hidden = inventory.hidden_attributes("p", enterprise_project_id=ALL)
    assert len(events) == 5
    assert all((len(e.inserted), len(e.deleted), len(e.moved)) == (2, 1, 2) for e in events)
    inserted = {i for e in events for i in e.inserted}
    deleted = {i for e in events for i in e.deleted}
    moved = {i for e in events for i in e.moved}
    assert moved <= ever  # a record moved may be deleted by a later event
    initial = set(
        ids(
            Inventory(SimulatorConfig(seed=21, records=400)).records("p", enterprise_project_id=ALL)
        )
    )
    assert set(stable) == initial - deleted
    assert (moved & initial) - deleted <= set(stable)  # moved, not inserted: stable
    assert set(ids(current)) == (initial | inserted) - deleted and len(current) == 400 + 5
    assert ids(current)[:2] == list(reversed(events[-1].moved))
    # Filters follow the moves: the second crawl is the filtered list, in its new order.
    wanted = [
        r
        for r in current
        if r["scan_status"] == "success" and hidden[r["image_id"]].enterprise_project_id == "0"
    ]
    assert served == filtered == wanted
    assert stable_filtered == [i for i in ids(filtered) if i in set(stable)]


def test_moves_are_deterministic_by_seed() -> None:
    def events(seed: int) -> tuple[object, ...]:
        config = SimulatorConfig(
            seed=seed, records=300, drift=DriftConfig(every_n_requests=1, moves=2, deletes=1)
        )
        with simulator_in_thread(config) as sim:
            crawl(sim.url("p"), limit=50)
            return sim.inventory.drift_events("p")

    first = events(3)
    assert first == events(3) and first != events(4)
    assert all(len(e.moved) == 2 for e in first)


def test_drift_config_moves() -> None:
    assert DriftConfig(every_n_requests=1, moves=1).enabled
    assert not DriftConfig(moves=1).enabled
    assert DriftConfig(every_n_requests=1, inserts=1).applies_to("any")
    with pytest.raises(ValueError, match="moves"):
        DriftConfig(every_n_requests=1, moves=-1)
