"""Invalid parameters: HTTP 400 with HSS.0001 and a message naming the parameter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_http import get, get_many

from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread
from connector.simulator.filters import InvalidParameter, filters_from_values, parse_page_query


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_in_thread(SimulatorConfig(records=300, max_offset=1000)) as running:
        yield running


BAD = [
    ("limit", "9"),
    ("limit", "201"),
    ("limit", "0"),
    ("limit", "abc"),
    ("limit", "10.5"),
    ("limit", ""),
    ("limit", " 20"),
    ("offset", "-1"),
    ("offset", "1001"),
    ("offset", "1e3"),
    ("offset", "0x10"),
    ("image_size", "big"),
    ("image_size", "99999999999999999999"),
    ("start_latest_update_time", "1.7e12"),
    ("end_latest_update_time", "2024-01-01"),
    ("start_latest_scan_time", "now"),
    ("end_latest_scan_time", "1,5"),
    ("has_vul", "True"),
    ("has_vul", "1"),
    ("has_vul", "yes"),
    ("has_container", "FALSE"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_invalid_parameter_is_400_hss_0001(sim: RunningSimulator, name: str, value: str) -> None:
    reply = get(sim.url("p"), {name: value})
    assert reply.status == 400
    assert reply.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert len(reply.headers["X-Request-Id"]) == 32
    body = reply.json()
    assert set(body) == {"error_code", "error_msg"}  # HSS errors carry no request_id
    assert body["error_code"] == "HSS.0001"
    assert name in body["error_msg"]
    assert sim.stats.log[-1].status == 400


def test_boundaries_are_accepted(sim: RunningSimulator) -> None:
    replies = get_many(
        sim.url("p"),
        [
            {"limit": 10},
            {"limit": 200},
            {"offset": 0},
            {"offset": 1000},
            {"offset": "+5", "limit": "+10"},
            {"image_size": -1},
            {"has_vul": "false", "has_container": "true"},
        ],
    )
    assert [reply.status for reply in replies] == [200] * 7
    assert len(replies[1].json()["data_list"]) == 200 < replies[1].json()["total_num"]
    assert replies[3].json()["data_list"] == []


def test_first_value_of_a_repeated_parameter_wins(sim: RunningSimulator) -> None:
    reply = get(sim.url("p") + "?limit=20&limit=5")
    assert reply.status == 200
    assert len(reply.json()["data_list"]) == 20


def test_default_max_offset_is_two_million() -> None:
    assert parse_page_query({"offset": "2000000"}, max_offset=2_000_000).offset == 2_000_000
    with pytest.raises(InvalidParameter, match="offset"):
        parse_page_query({"offset": "2000001"}, max_offset=SimulatorConfig().max_offset)


def test_python_filter_values_are_checked() -> None:
    assert filters_from_values({"has_vul": True}).has_vul is True
    with pytest.raises(TypeError, match="unknown filter"):
        filters_from_values({"scan_stauts": "success"})
    with pytest.raises(TypeError, match="unknown filter"):
        filters_from_values({"offset": 10})
    with pytest.raises(InvalidParameter):
        filters_from_values({"image_size": "ten"})
