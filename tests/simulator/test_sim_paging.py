"""Paging, ordering and response shape over real HTTP."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import orjson
import pytest
from sim_http import crawl, get, get_many, ids

from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread

PROJECT = "0a1b2c3d4e5f"
REFERENCE_FIELDS = {
    "image_name",
    "image_id",
    "image_digest",
    "image_version",
    "local_image_type",
    "scan_status",
    "image_size",
    "latest_update_time",
    "latest_scan_time",
    "vul_num",
    "unsafe_setting_num",
    "malicious_file_num",
    "host_num",
    "container_num",
    "component_num",
    "scan_failed_desc",
    "severity_level",
    "host_name",
    "host_id",
    "agent_id",
    "non_scan_reason",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(seed=11, records=733, project_records={"empty": 0})
    with simulator_in_thread(config) as running:
        yield running


def test_default_page_is_first_ten_of_default_enterprise_project(sim: RunningSimulator) -> None:
    reply = get(sim.url(PROJECT))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["X-Request-Id"])
    body = reply.json()
    assert set(body) == {"total_num", "data_list"}
    expected = sim.inventory.records(PROJECT)
    assert body["total_num"] == len(expected) == sim.inventory.total(PROJECT)
    assert body["data_list"] == expected[:10]
    assert 0 < body["total_num"] < sim.inventory.record_count(PROJECT) == 733


@pytest.mark.parametrize("params", [{}, {"limit": 200, "enterprise_project_id": "all_granted_eps"}])
def test_body_is_compact_json_of_total_then_records(
    sim: RunningSimulator, params: dict[str, str | int]
) -> None:
    """The body is assembled from each record's cached JSON; it must be byte for byte what
    encoding the whole page at once gives (no stray separators, same key order)."""
    reply = get(sim.url(PROJECT), params)
    assert reply.body == orjson.dumps(orjson.loads(reply.body))
    assert reply.body.startswith(b'{"total_num":') and reply.body.endswith(b"]}")


def test_empty_page_body(sim: RunningSimulator) -> None:
    reply = get(sim.url("empty"))
    assert reply.body == b'{"total_num":0,"data_list":[]}'


def test_request_ids_differ(sim: RunningSimulator) -> None:
    replies = get_many(sim.url(PROJECT), [{}, {}, {}])
    assert len({reply.headers["X-Request-Id"] for reply in replies}) == 3


@pytest.mark.parametrize("limit", [10, 37, 200])
def test_pages_concatenate_to_the_whole_result(sim: RunningSimulator, limit: int) -> None:
    expected = sim.inventory.records(PROJECT, enterprise_project_id="all_granted_eps")
    before = sim.stats.project(PROJECT).requests
    got = crawl(sim.url(PROJECT), limit=limit, enterprise_project_id="all_granted_eps")
    assert got == expected
    assert len(expected) == 733
    assert sim.stats.project(PROJECT).requests - before == math.ceil(733 / limit)
    last = [e for e in sim.stats.log if e.project_id == PROJECT][-1]
    assert (last.offset, last.limit, last.status) == (
        (math.ceil(733 / limit) - 1) * limit,
        limit,
        200,
    )


def test_last_partial_page_and_offset_past_the_end(sim: RunningSimulator) -> None:
    total = sim.inventory.total(PROJECT)
    last_offset = total - 3
    replies = get_many(
        sim.url(PROJECT),
        [
            {"offset": last_offset, "limit": 10},
            {"offset": total, "limit": 10},
            {"offset": total + 500},
        ],
    )
    assert [len(r.json()["data_list"]) for r in replies] == [3, 0, 0]
    assert all(r.json()["total_num"] == total for r in replies)
    assert replies[0].json()["data_list"] == sim.inventory.records(PROJECT)[-3:]


def test_unaligned_offsets_overlap_consistently(sim: RunningSimulator) -> None:
    a, b = get_many(sim.url(PROJECT), [{"offset": 5, "limit": 20}, {"offset": 15, "limit": 20}])
    assert a.json()["data_list"][10:] == b.json()["data_list"][:10]


def test_order_is_stable_across_requests(sim: RunningSimulator) -> None:
    first, second = get_many(sim.url(PROJECT), [{"offset": 100, "limit": 50}] * 2)
    assert first.body == second.body


def test_every_project_id_has_its_own_inventory(sim: RunningSimulator) -> None:
    a = get(sim.url("project-a"), {"limit": 10}).json()
    b = get(sim.url("project-b"), {"limit": 10}).json()
    assert not set(ids(a["data_list"])) & set(ids(b["data_list"]))
    assert sim.inventory.record_count("project-a") == 733


def test_empty_project(sim: RunningSimulator) -> None:
    assert get(sim.url("empty")).json() == {"total_num": 0, "data_list": []}


def test_records_only_carry_reference_fields_and_ids_are_unique(sim: RunningSimulator) -> None:
    records = crawl(sim.url(PROJECT), enterprise_project_id="all_granted_eps")
    assert all(set(record) <= REFERENCE_FIELDS for record in records)
    assert len(set(ids(records))) == len(records)


def test_enterprise_projects_partition_the_inventory(sim: RunningSimulator) -> None:
    every = set(ids(crawl(sim.url(PROJECT), enterprise_project_id="all_granted_eps")))
    parts = [
        set(ids(crawl(sim.url(PROJECT), enterprise_project_id=ep)))
        for ep in sim.inventory.enterprise_project_ids
    ]
    assert all(parts)
    assert sum(len(part) for part in parts) == len(every)
    assert set().union(*parts) == every
    assert parts[0] == set(ids(crawl(sim.url(PROJECT))))  # the default is "0"
