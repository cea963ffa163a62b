"""Gateway behaviours over real HTTP: a page cap, short, empty and missing pages, a total
that lags, leads or jitters, records swapped across a page boundary."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shlex
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest
from sim_http import aget, get, get_many, ids

from connector.simulator import (
    FaultConfig,
    GatewayConfig,
    PageBehaviour,
    RequestLogEntry,
    SimulatorConfig,
    simulator_in_thread,
)
from connector.simulator.cli import add_arguments, config_from_args, run

ALL = "all_granted_eps"


def gateway(seed: int = 5, records: int = 300, **behaviours: Any) -> SimulatorConfig:
    return SimulatorConfig(seed=seed, records=records, gateway=GatewayConfig(**behaviours))


def page_log(sim: Any, project: str = "p") -> list[RequestLogEntry]:
    return [entry for entry in sim.stats.log if entry.project_id == project]


def repeat(config: SimulatorConfig, params: dict[str, Any], count: int) -> list[Any]:
    """``count`` identical requests of project ``p``: the bodies, the log, the truth."""
    with simulator_in_thread(config) as sim:
        replies = get_many(sim.url("p"), [params] * count)
        assert all(reply.status == 200 for reply in replies)
        truth = sim.inventory.records("p", **_filters(params))
        return [[r.json() for r in replies], page_log(sim), truth, sim.stats.project("p")]


def _filters(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("offset", "limit")}


async def _paged(url: str, step_by_served: bool, limit: int = 50) -> list[dict[str, Any]]:
    """Offset paging by ``limit`` (naive) or by the records actually served."""
    out: list[dict[str, Any]] = []
    offset = 0
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"offset": offset, "limit": limit, "enterprise_project_id": ALL}
            page = (await aget(session, url, params)).json()
            out.extend(page["data_list"])
            offset += len(page["data_list"]) if step_by_served else limit
            if offset >= page["total_num"] or not page["data_list"]:
                return out


# -- off by default ----------------------------------------------------------------------


def test_everything_is_off_by_default() -> None:
    config = SimulatorConfig()
    assert config.gateway == GatewayConfig()
    assert not config.gateway.page_enabled and not config.gateway.total_enabled
    assert config.gateway.page_cap is None and config.shared_image_rate == 0
    assert config.drift.moves == 0
    with simulator_in_thread(SimulatorConfig(seed=5, records=300)) as sim:
        params = {"limit": 200, "enterprise_project_id": ALL}
        replies = get_many(sim.url("p"), [{**params, "offset": o} for o in (0, 200, 400)])
        replies.append(get(sim.url("p"), {"limit": 5}))
        log = page_log(sim)
        stats = sim.stats.project("p")
    assert [len(r.json()["data_list"]) for r in replies[:3]] == [200, 100, 0]
    assert all(r.json()["total_num"] == 300 for r in replies[:3])
    assert [(e.served, e.behaviour, e.total_num) for e in log] == [
        (200, None, 300),
        (100, None, 300),
        (0, None, 300),
        (None, None, None),  # HTTP 400: no page
    ]
    assert stats.behaviours == Counter() and stats.records_served == 300


# -- page cap ----------------------------------------------------------------------------


def test_page_cap_serves_at_most_n_whatever_limit_asks() -> None:
    with simulator_in_thread(gateway(page_cap=30)) as sim:
        url = sim.url("p")
        truth = sim.inventory.records("p", enterprise_project_id=ALL)
        replies = get_many(
            url,
            [
                {"limit": 200, "enterprise_project_id": ALL},
                {"limit": 20, "enterprise_project_id": ALL},
                {"offset": 290, "limit": 200, "enterprise_project_id": ALL},
                {"limit": 201},
                {"limit": 9},
            ],
        )
        assert [r.status for r in replies] == [200, 200, 200, 400, 400]
        pages = [r.json() for r in replies[:3]]
        assert [p["data_list"] for p in pages] == [truth[:30], truth[:20], truth[290:]]
        assert all(p["total_num"] == 300 for p in pages)
        assert [e.served for e in page_log(sim)][:3] == [30, 20, 10]
        assert sim.stats.behaviours == Counter()  # the cap is the server's, not a behaviour

        # Paging by what was served reads everything; paging by limit skips.
        assert asyncio.run(_paged(url, step_by_served=True)) == truth
        naive = asyncio.run(_paged(url, step_by_served=False))
        assert len(naive) == 30 * math.ceil(300 / 50) and set(ids(naive)) < set(ids(truth))


# -- short, empty, missing data_list -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "behaviour"),
    [
        ("short_page_rate", "short"),
        ("empty_page_rate", "empty"),
        ("missing_data_list_rate", "missing_data_list"),
    ],
)
def test_transient_page_behaviour_at_about_its_rate(field: str, behaviour: str) -> None:
    params = {"offset": 40, "limit": 50}
    bodies, log, truth, stats = repeat(gateway(**{field: 0.25}), params, 400)
    full = truth[40:90]
    assert len(full) == 50
    hit = [i for i, entry in enumerate(log) if entry.behaviour is not None]
    assert 60 <= len(hit) <= 140, len(hit)  # 100 expected, sd 8.7
    assert stats.behaviours == Counter({behaviour: len(hit)})
    lengths = set()
    for i, (body, entry) in enumerate(zip(bodies, log, strict=True)):
        assert body["total_num"] == len(truth)  # never touched by these behaviours
        assert entry.total_num == len(truth)
        if i not in hit:
            assert body["data_list"] == full and entry.served == 50
            continue
        assert entry.behaviour == behaviour
        if behaviour == "short":
            served = body["data_list"]
            assert 1 <= len(served) <= 49 and served == full[: len(served)]
            assert entry.served == len(served)
            lengths.add(len(served))
        elif behaviour == "empty":
            assert body == {"total_num": len(truth), "data_list": []} and entry.served == 0
        else:
            assert body == {"total_num": len(truth)} and entry.served == 0
    if behaviour == "short":
        assert len(lengths) > 20  # a seeded length in [1, n-1], not a fixed one
    # A re-read of an altered page usually gets it whole.
    again = [i + 1 for i in hit if i + 1 < len(log)]
    assert sum(log[i].behaviour is None for i in again) > 0.6 * len(again)
    assert stats.records_served == sum(e.served for e in log)


def test_missing_data_list_body_is_exactly_the_total() -> None:
    with simulator_in_thread(gateway(missing_data_list_rate=1.0)) as sim:
        reply = get(sim.url("p"), {"offset": 5000})
        assert reply.body == b'{"total_num":%d}' % sim.inventory.total("p")
        assert page_log(sim)[-1].behaviour == "missing_data_list"


def test_short_and_empty_only_when_they_change_the_page() -> None:
    config = gateway(short_page_rate=0.5, empty_page_rate=0.5)
    with simulator_in_thread(config) as sim:
        total = sim.inventory.total("p")
        single = get_many(sim.url("p"), [{"offset": total - 1}] * 30)
        past = get_many(sim.url("p"), [{"offset": total}] * 30)
        log = page_log(sim)
    # A one-record page cannot be shortened but can be emptied; an empty page stays as is.
    assert {e.behaviour for e in log[:30]} == {None, "empty"}
    for reply, entry in zip(single, log, strict=False):
        assert len(reply.json()["data_list"]) == entry.served == (entry.behaviour is None)
    assert all(r.json()["data_list"] == [] for r in past)
    assert {e.behaviour for e in log[30:]} == {None}


def test_behaviours_exclude_each_other_and_their_rates_add_up() -> None:
    rates = {"short_page_rate": 0.1, "empty_page_rate": 0.1}
    rates |= {"missing_data_list_rate": 0.1, "swap_rate": 0.1}
    _, log, _, stats = repeat(gateway(**rates), {"offset": 20, "limit": 30}, 800)
    assert set(stats.behaviours) == {"short", "empty", "missing_data_list", "swap"}
    assert all(40 <= count <= 120 for count in stats.behaviours.values()), stats.behaviours
    assert 0.3 < sum(e.behaviour is None for e in log) / 800 < 0.7


def test_page_behaviours_are_deterministic_by_seed_and_per_project() -> None:
    rates = {"short_page_rate": 0.2, "empty_page_rate": 0.1, "swap_rate": 0.2}
    rates |= {"total_jitter": 4}

    def bodies(seed: int, interleave: bool) -> list[bytes]:
        with simulator_in_thread(gateway(seed=seed, **rates)) as sim:
            out = []
            for offset in range(0, 600, 20):
                out.append(get(sim.url("p"), {"offset": offset % 300, "limit": 20}).body)
                if interleave:
                    get(sim.url("other"), {"offset": offset % 300})
            return out

    first = bodies(1, interleave=False)
    assert first == bodies(1, interleave=True)  # other projects draw from their own streams
    assert first != bodies(2, interleave=False)


# -- swap across the page boundary -------------------------------------------------------


def test_swap_replaces_the_second_to_last_record_by_the_next_one() -> None:
    with simulator_in_thread(gateway(swap_rate=1.0, page_cap=15)) as sim:
        truth = sim.inventory.records("p", enterprise_project_id=ALL)
        replies = get_many(
            sim.url("p"),
            [
                {"offset": 0, "limit": 10, "enterprise_project_id": ALL},
                {"offset": 33, "limit": 50, "enterprise_project_id": ALL},  # capped to 15
                {"offset": 290, "limit": 10, "enterprise_project_id": ALL},  # the last page
                {"offset": 299, "limit": 10, "enterprise_project_id": ALL},
            ],
        )
        pages = [r.json()["data_list"] for r in replies]
        log = page_log(sim)
        assert sim.inventory.records("p", enterprise_project_id=ALL) == truth  # list unchanged
    assert pages[0] == [*truth[0:8], truth[10], truth[9]]
    assert pages[1] == [*truth[33:46], truth[48], truth[47]]
    assert pages[2] == truth[290:300]  # no record after the page: nothing to swap
    assert pages[3] == truth[299:]
    assert [e.behaviour for e in log] == ["swap", "swap", None, None]
    assert [e.served for e in log] == [10, 15, 10, 1]


def test_swap_is_transient_and_at_about_its_rate() -> None:
    params = {"offset": 100, "limit": 20}
    bodies, log, truth, stats = repeat(gateway(swap_rate=0.3), params, 400)
    full = truth[100:120]
    swapped = [*truth[100:118], truth[120], truth[119]]
    assert 80 <= stats.behaviours["swap"] <= 160, stats.behaviours  # 120 expected, sd 9
    for body, entry in zip(bodies, log, strict=True):
        assert body["data_list"] == (swapped if entry.behaviour == "swap" else full)


def test_a_naive_crawl_under_swaps_skips_and_repeats() -> None:
    with simulator_in_thread(gateway(swap_rate=1.0)) as sim:
        crawled = asyncio.run(_paged(sim.url("p"), step_by_served=True, limit=20))
        truth = sim.inventory.records("p", enterprise_project_id=ALL)
    assert len(crawled) == len(truth) == 300
    skipped = set(ids(truth)) - set(ids(crawled))
    repeated = [i for i, n in Counter(ids(crawled)).items() if n > 1]
    # Every page but the last loses its 19th record to the next page's 1st, read twice.
    assert skipped == {truth[o + 18]["image_id"] for o in range(0, 280, 20)}
    assert set(repeated) == {truth[o + 20]["image_id"] for o in range(0, 280, 20)}


# -- total_num that lags, leads or jitters -----------------------------------------------


@pytest.mark.parametrize(("skew", "expected"), [(-7, 293), (12, 312), (-1000, 0)])
def test_total_skew(skew: int, expected: int) -> None:
    with simulator_in_thread(gateway(total_skew=skew)) as sim:
        truth = sim.inventory.records("p", enterprise_project_id=ALL)
        reply = get(sim.url("p"), {"offset": 250, "limit": 100, "enterprise_project_id": ALL})
        entry = page_log(sim)[-1]
    assert reply.json() == {"total_num": expected, "data_list": truth[250:]}
    assert (entry.total_num, entry.served, entry.behaviour) == (expected, 50, None)


def test_total_jitter_is_uniform_around_the_skewed_total() -> None:
    bodies, log, truth, _ = repeat(gateway(total_skew=-2, total_jitter=3), {}, 300)
    totals = Counter(body["total_num"] for body in bodies)
    true = len(truth)
    assert set(totals) == set(range(true - 5, true + 2))
    assert all(25 <= count <= 65 for count in totals.values()), totals  # 43 expected
    assert [e.total_num for e in log] == [body["total_num"] for body in bodies]
    assert all(body["data_list"] == truth[:10] for body in bodies)


def test_total_jitter_is_clamped_at_zero() -> None:
    bodies, _, truth, _ = repeat(gateway(records=0, total_jitter=5), {}, 60)
    assert truth == [] and {body["total_num"] for body in bodies} == set(range(6))


# -- with transport faults -----------------------------------------------------------------


def test_a_corrupted_body_is_not_altered_and_has_no_page() -> None:
    config = SimulatorConfig(
        records=100,
        faults=FaultConfig(invalid_json_rate=0.5, truncate_rate=0.5),
        gateway=GatewayConfig(missing_data_list_rate=1.0, page_cap=20),
    )
    with simulator_in_thread(config) as sim:
        url = sim.url("p")

        async def main() -> None:
            async with aiohttp.ClientSession() as session:
                for _ in range(10):
                    with contextlib.suppress(aiohttp.ClientPayloadError):
                        await aget(session, url, {"limit": 50})

        asyncio.run(main())
        log = page_log(sim)
    assert {e.fault for e in log} == {"invalid_json", "truncated"}
    assert all(e.served is None and e.behaviour is None for e in log)
    assert sim.stats.behaviours == Counter()


def test_a_slow_page_is_altered_like_any_other() -> None:
    config = SimulatorConfig(
        records=100,
        faults=FaultConfig(slow_rate=1.0, slow_seconds=0.0),
        gateway=GatewayConfig(empty_page_rate=1.0),
    )
    with simulator_in_thread(config) as sim:
        assert get(sim.url("p")).json()["data_list"] == []
        entry = page_log(sim)[-1]
    assert (entry.fault, entry.behaviour, entry.served) == ("slow", "empty", 0)


def test_invalid_json_fault_still_breaks_the_body() -> None:
    config = SimulatorConfig(
        records=50,
        faults=FaultConfig(invalid_json_rate=1.0),
        gateway=GatewayConfig(missing_data_list_rate=1.0),
    )
    with simulator_in_thread(config) as sim:
        reply = get(sim.url("p"))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(reply.body)


# -- configuration and CLI -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"page_cap": 0}, ValueError, "page_cap"),
        ({"page_cap": -5}, ValueError, "page_cap"),
        ({"page_cap": 2.5}, TypeError, "page_cap"),
        ({"short_page_rate": 1.5}, ValueError, "short_page_rate"),
        ({"empty_page_rate": -0.1}, ValueError, "empty_page_rate"),
        ({"missing_data_list_rate": math.nan}, ValueError, "missing_data_list_rate"),
        ({"swap_rate": math.inf}, ValueError, "swap_rate"),
        ({"short_page_rate": 0.6, "swap_rate": 0.6}, ValueError, "sum"),
        ({"total_jitter": -1}, ValueError, "total_jitter"),
        ({"total_skew": 1.5}, TypeError, "total_skew"),
        ({"total_jitter": True}, TypeError, "total_jitter"),
    ],
)
def test_gateway_config_is_validated(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        GatewayConfig(**kwargs)


def test_gateway_config_accepts_its_bounds() -> None:
    config = GatewayConfig(page_cap=1, short_page_rate=1.0, total_skew=-5, total_jitter=0)
    assert config.page_enabled and config.total_enabled
    assert GatewayConfig(total_jitter=1).total_enabled
    assert not GatewayConfig(page_cap=10).page_enabled
    with pytest.raises(TypeError, match="gateway"):
        SimulatorConfig(gateway={"page_cap": 10})  # type: ignore[arg-type]
    assert [b.value for b in PageBehaviour] == [
        "short",
        "empty",
        "missing_data_list",
        "swap",
        "cut",
        "short_at_total",
    ]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_map_to_config() -> None:
    argv = (
        "--page-cap 100 --short-page-rate 0.1 --empty-page-rate 0.05"
        " --missing-data-list-rate 0.02 --swap-rate 0.2 --total-skew -3 --total-jitter 2"
        " --drift-every 4 --drift-moves 3 --shared-image-rate 0.25"
    )
    config = config_from_args(parse(*shlex.split(argv)), {})
    assert config.gateway == GatewayConfig(
        page_cap=100,
        short_page_rate=0.1,
        empty_page_rate=0.05,
        missing_data_list_rate=0.02,
        swap_rate=0.2,
        total_skew=-3,
        total_jitter=2,
    )
    assert (config.drift.every_n_requests, config.drift.moves) == (4, 3)
    assert config.drift.enabled
    assert config.shared_image_rate == 0.25
    assert config_from_args(parse(), {}) == SimulatorConfig()


@pytest.mark.parametrize(
    "argv",
    [
        "--page-cap 0",
        "--short-page-rate 1.5",
        "--swap-rate -0.5",
        "--empty-page-rate nan",
        "--short-page-rate 0.7 --missing-data-list-rate 0.7",
        "--total-jitter -1",
        "--drift-moves -1",
        "--shared-image-rate 2",
        "--shared-image-rate nan",
    ],
)
def test_cli_rejects_invalid_gateway_values(argv: str) -> None:
    assert run(parse(*shlex.split(argv))) == 2
