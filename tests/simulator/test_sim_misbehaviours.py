"""Misbehaviours a crawl's proof is held to, over real HTTP: a page cut at an offset, a
short page that ends exactly at a stale total, a gateway that stops serving past an
offset; records without an update time, rows listed twice, rows that share a natural key
and differ."""

from __future__ import annotations

import argparse
import shlex
from collections import Counter
from typing import Any

import pytest
from sim_http import get_many, ids

from connector.simulator import (
    GatewayConfig,
    PageCut,
    SimulatorConfig,
    natural_key,
    simulator_in_thread,
)
from connector.simulator.cli import add_arguments, config_from_args, run

ALL = "all_granted_eps"
EVERY_TIME = {"start_latest_update_time": 0, "end_latest_update_time": 2**62}


def pages(config: SimulatorConfig, requests: list[dict[str, Any]], project: str = "p") -> Any:
    """The bodies of these requests (in order, one session), the log and the truth."""
    with simulator_in_thread(config) as sim:
        params = [{"enterprise_project_id": ALL, **request} for request in requests]
        replies = get_many(sim.url(project), params)
        assert all(reply.status == 200 for reply in replies), [r.body[:200] for r in replies]
        truth = sim.inventory.records(project, enterprise_project_id=ALL)
        log = [entry for entry in sim.stats.log if entry.project_id == project]
        return [reply.json() for reply in replies], log, truth


# -- page cuts ---------------------------------------------------------------------------


def test_cut_page_cuts_the_first_answers_at_that_offset_then_serves_it_whole() -> None:
    config = SimulatorConfig(
        seed=61, records=300, gateway=GatewayConfig(cut_pages=(PageCut(0, 50, 2),))
    )
    bodies, log, truth = pages(config, [{"offset": 0, "limit": 200}] * 4)
    assert [len(b["data_list"]) for b in bodies] == [50, 50, 200, 200]
    assert all(b["total_num"] == 300 for b in bodies)
    assert all(b["data_list"] == truth[: len(b["data_list"])] for b in bodies)
    assert [e.behaviour for e in log] == ["cut", "cut", None, None]


def test_cut_page_counts_per_project_and_only_at_its_offset() -> None:
    config = SimulatorConfig(
        seed=62, records=300, gateway=GatewayConfig(cut_pages=(PageCut(200, 30),))
    )
    with simulator_in_thread(config) as sim:
        requests = [
            {"offset": o, "limit": 100, "enterprise_project_id": ALL} for o in (0, 100, 200, 200)
        ]
        first = get_many(sim.url("p"), requests)
        other = get_many(sim.url("q"), requests[2:3])
    assert [len(r.json()["data_list"]) for r in first] == [100, 100, 30, 100]
    assert len(other[0].json()["data_list"]) == 30


def test_cut_page_never_serves_more_than_the_page_holds() -> None:
    config = SimulatorConfig(
        seed=63, records=250, gateway=GatewayConfig(cut_pages=(PageCut(200, 150),))
    )
    bodies, log, truth = pages(config, [{"offset": 200, "limit": 200}])
    assert bodies[0]["data_list"] == truth[200:] and len(truth) == 250
    assert log[0].behaviour is None


def test_short_at_total_ends_one_page_exactly_at_a_stale_total() -> None:
    config = SimulatorConfig(
        seed=64, records=500, gateway=GatewayConfig(total_skew=-100, short_at_total=1)
    )
    requests = [{"offset": o, "limit": 100} for o in (300, 350, 350, 400)]
    bodies, log, truth = pages(config, requests)
    assert [b["total_num"] for b in bodies] == [400] * 4
    # 300..400 ends at the total without passing it: not cut
    assert [len(b["data_list"]) for b in bodies] == [100, 50, 100, 100]
    assert bodies[1]["data_list"] == truth[350:400]
    assert bodies[3]["data_list"] == truth[400:500]  # the records go on past the total
    assert [e.behaviour for e in log] == [None, "short_at_total", None, None]


def test_short_at_total_once_in_a_naive_crawl_of_5000_with_a_total_1000_short() -> None:
    config = SimulatorConfig(
        seed=65, records=5_000, gateway=GatewayConfig(total_skew=-1_000, short_at_total=1)
    )
    with simulator_in_thread(config) as sim:
        requests = [{"offset": o, "limit": 150} for o in range(0, 5_000, 150)]
        bodies = [
            r.json()
            for r in get_many(sim.url("p"), [{**q, "enterprise_project_id": ALL} for q in requests])
        ]
        behaviours = sim.stats.project("p").behaviours
    ends = [q["offset"] + len(b["data_list"]) for q, b in zip(requests, bodies, strict=True)]
    assert 4_000 in ends and ends.count(4_000) == 1
    assert all(b["total_num"] == 4_000 for b in bodies)
    assert behaviours == Counter({"short_at_total": 1})


def test_serve_until_never_serves_past_the_offset_and_keeps_the_true_total() -> None:
    config = SimulatorConfig(
        seed=66, records=300, gateway=GatewayConfig(serve_until=120, swap_rate=1.0)
    )
    requests = [{"offset": o, "limit": 100} for o in (0, 100, 200)]
    bodies, _log, truth = pages(config, requests)
    assert [len(b["data_list"]) for b in bodies] == [100, 20, 0]
    assert all(b["total_num"] == 300 for b in bodies)
    served = {i for b in bodies for i in ids(b["data_list"])}
    assert served <= set(ids(truth[:120]))  # not even a swap brings in a record past it


# -- rows --------------------------------------------------------------------------------


def test_records_without_update_time_are_listed_but_no_time_range_finds_them() -> None:
    config = SimulatorConfig(seed=67, records=400, no_update_time=7)
    with simulator_in_thread(config) as sim:
        url = sim.url("p")
        unfiltered = get_many(
            url, [{"offset": o, "limit": 200, "enterprise_project_id": ALL} for o in (0, 200)]
        )
        ranged = get_many(
            url,
            [
                {"offset": o, "limit": 200, "enterprise_project_id": ALL, **EVERY_TIME}
                for o in (0, 200)
            ],
        )
        truth = sim.inventory.records("p", enterprise_project_id=ALL)
        in_range = sim.inventory.total("p", enterprise_project_id=ALL, **EVERY_TIME)
        other = sim.inventory.records("q", enterprise_project_id=ALL)
    listed = [r for reply in unfiltered for r in reply.json()["data_list"]]
    assert listed == truth and unfiltered[0].json()["total_num"] == 400
    missing = [r["image_id"] for r in listed if "latest_update_time" not in r]
    assert len(missing) == 7
    found = [r for reply in ranged for r in reply.json()["data_list"]]
    assert ranged[0].json()["total_num"] == in_range == len(found) == 393
    assert not set(missing) & set(ids(found))
    assert sum("latest_update_time" not in r for r in other) == 7
    assert {r["image_id"] for r in other if "latest_update_time" not in r} != set(missing)


def test_no_update_time_is_deterministic_by_seed() -> None:
    def without(seed: int) -> set[str]:
        with simulator_in_thread(SimulatorConfig(seed=seed, records=300, no_update_time=4)) as sim:
            records = sim.inventory.records("p", enterprise_project_id=ALL)
        return {r["image_id"] for r in records if "latest_update_time" not in r}

    assert without(68) == without(68) != without(69)


def test_duplicate_rows_are_listed_twice_back_to_back_and_counted() -> None:
    config = SimulatorConfig(seed=70, records=200, duplicate_rows=3)
    bodies, _log, truth = pages(
        config, [{"offset": 0, "limit": 200}, {"offset": 200, "limit": 200}]
    )
    listed = bodies[0]["data_list"] + bodies[1]["data_list"]
    assert listed == truth and bodies[0]["total_num"] == len(listed) == 203
    twice = [i for i in range(len(listed) - 1) if listed[i] == listed[i + 1]]
    assert len(twice) == 3
    keys = Counter(natural_key(r) for r in listed)
    assert sorted(keys.values()) == [1] * 197 + [2] * 3
    with simulator_in_thread(config) as sim:
        distinct = sim.inventory.distinct_records("p", enterprise_project_id=ALL)
        stable = sim.inventory.stable_records("p", enterprise_project_id=ALL)
        ever = sim.inventory.ever_records("p", enterprise_project_id=ALL)
    assert len(distinct) == len(stable) == len(ever) == 200
    assert {natural_key(r) for r in distinct} == set(keys)


def test_conflicting_rows_share_the_natural_key_and_differ_in_vul_num() -> None:
    config = SimulatorConfig(seed=71, records=200, conflicting_rows=2)
    bodies, _log, truth = pages(
        config, [{"offset": 0, "limit": 200}, {"offset": 200, "limit": 200}]
    )
    listed = bodies[0]["data_list"] + bodies[1]["data_list"]
    assert listed == truth and bodies[0]["total_num"] == len(listed) == 202
    pairs = [
        (listed[i], listed[i + 1])
        for i in range(len(listed) - 1)
        if natural_key(listed[i]) == natural_key(listed[i + 1])
    ]
    assert len(pairs) == 2
    for first, second in pairs:
        assert second["vul_num"] == first["vul_num"] + 1
        assert {k: v for k, v in first.items() if k != "vul_num"} == {
            k: v for k, v in second.items() if k != "vul_num"
        }
    with simulator_in_thread(config) as sim:
        inventory = sim.inventory
        default_ep = Counter(natural_key(r) for r in inventory.records("p"))
        hidden = inventory.hidden_by_natural_key("p", enterprise_project_id=ALL)
        distinct = inventory.distinct_records("p", enterprise_project_id=ALL)
        stable = inventory.stable_records("p", enterprise_project_id=ALL)
    assert len(distinct) == len(stable) == 202  # two records each, not one listed twice
    for first, _second in pairs:
        key = natural_key(first)
        assert key in hidden
        assert default_ep[key] in (0, 2)  # both in one enterprise project


# -- flags -------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_map_to_config() -> None:
    argv = (
        "--cut-page 0:50:2 --cut-page 400:10 --short-at-total 1 --serve-until 1000"
        " --no-update-time 5 --duplicate-rows 3 --conflicting-rows 1"
    )
    config = config_from_args(parse(*shlex.split(argv)), {})
    assert config.gateway == GatewayConfig(
        cut_pages=(PageCut(0, 50, 2), PageCut(400, 10, 1)), short_at_total=1, serve_until=1000
    )
    assert (config.no_update_time, config.duplicate_rows, config.conflicting_rows) == (5, 3, 1)
    default = config_from_args(parse(), {})
    assert default.gateway.cut_pages == () and default.gateway.serve_until is None
    assert not default.gateway.cuts_enabled and default.duplicate_rows == 0


@pytest.mark.parametrize(
    "argv",
    [
        "--cut-page 0:50 --cut-page 0:20",
        "--short-at-total -1",
        "--serve-until -5",
        "--no-update-time -1",
        "--duplicate-rows -2",
        "--conflicting-rows -1",
    ],
)
def test_cli_rejects_invalid_values(argv: str) -> None:
    assert run(parse(*shlex.split(argv))) == 2


@pytest.mark.parametrize("value", ["0", "0:x", "a:1", "1:2:3:4", "0:5:0", "-1:5"])
def test_cli_rejects_a_malformed_cut_page(value: str) -> None:
    with pytest.raises(SystemExit):
        parse("--cut-page", value)
