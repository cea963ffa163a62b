"""Every filter over real HTTP, against an independent brute-force evaluation.

The expected result of each filter is computed here from the served records plus the
hidden attributes the inventory exposes, with plain Python, not with the simulator's
filter code; the order must be the serving order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sim_http import crawl, ids

from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread
from connector.simulator.generator import Hidden

PROJECT = "filters-project"
ALL = "all_granted_eps"
Row = tuple[dict[str, Any], Hidden]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_in_thread(SimulatorConfig(seed=5, records=1500)) as running:
        yield running


@pytest.fixture(scope="module")
def rows(sim: RunningSimulator) -> list[Row]:
    records = sim.inventory.records(PROJECT, enterprise_project_id=ALL)
    hidden = sim.inventory.hidden_attributes(PROJECT, enterprise_project_id=ALL)
    assert len(records) == len(hidden) == 1500
    return [(record, hidden[record["image_id"]]) for record in records]


def expect(rows: list[Row], predicate: Callable[[dict[str, Any], Hidden], bool]) -> list[str]:
    return [record["image_id"] for record, hidden in rows if predicate(record, hidden)]


def served(sim: RunningSimulator, **params: str | int | bool) -> list[str]:
    return ids(crawl(sim.url(PROJECT), **params))


def scan_time(record: dict[str, Any]) -> int:
    return int(record.get("latest_scan_time") or 0)


def test_enterprise_project_default_specific_unknown(
    sim: RunningSimulator, rows: list[Row]
) -> None:
    for ep in sim.inventory.enterprise_project_ids:
        wanted = expect(rows, lambda r, h, ep=ep: h.enterprise_project_id == ep)
        assert wanted
        assert served(sim, enterprise_project_id=ep) == wanted
    assert served(sim) == expect(rows, lambda r, h: h.enterprise_project_id == "0")
    assert served(sim, enterprise_project_id="no-such-ep") == []
    assert served(sim, enterprise_project_id="") == served(sim)  # empty = absent


def test_image_name_is_partial_and_case_sensitive(sim: RunningSimulator, rows: list[Row]) -> None:
    wanted = expect(rows, lambda r, h: "redis" in r["image_name"])
    names = {r["image_name"] for r, _ in rows if r["image_id"] in set(wanted)}
    assert {"redis", "library/redis"} <= names
    assert served(sim, enterprise_project_id=ALL, image_name="redis") == wanted
    assert served(sim, enterprise_project_id=ALL, image_name="Redis") == []
    wanted_swr = expect(rows, lambda r, h: "myhuaweicloud.com/" in r["image_name"])
    assert served(sim, enterprise_project_id=ALL, image_name="myhuaweicloud.com/") == wanted_swr


def test_image_version_exact_and_only_with_image_name(
    sim: RunningSimulator, rows: list[Row]
) -> None:
    wanted = expect(
        rows, lambda r, h: "nginx" in r["image_name"] and r["image_version"] == "latest"
    )
    assert wanted
    got = served(sim, enterprise_project_id=ALL, image_name="nginx", image_version="latest")
    assert got == wanted
    assert served(sim, enterprise_project_id=ALL, image_name="nginx", image_version="lat") == []
    # Without image_name the version is ignored.
    assert sim.inventory.total(PROJECT, enterprise_project_id=ALL, image_version="latest") == 1500
    assert len(served(sim, enterprise_project_id=ALL, image_version="latest")) == 1500


@pytest.mark.parametrize(
    ("query", "response"),
    [
        ("unscan", "unscan"),
        ("success", "success"),
        ("scanning", "scanning"),
        ("failed", "failed"),
        ("waiting_for_scan", "waiting"),
    ],
)
def test_scan_status(sim: RunningSimulator, rows: list[Row], query: str, response: str) -> None:
    wanted = expect(rows, lambda r, h: r["scan_status"] == response)
    assert wanted
    assert served(sim, enterprise_project_id=ALL, scan_status=query) == wanted


@pytest.mark.parametrize("value", ["waiting", "SUCCESS", "bogus"])
def test_unknown_enum_values_match_nothing(sim: RunningSimulator, value: str) -> None:
    assert served(sim, enterprise_project_id=ALL, scan_status=value) == []
    assert served(sim, enterprise_project_id=ALL, local_image_type=value) == []


@pytest.mark.parametrize("kind", ["other_image", "swr_image"])
def test_local_image_type(sim: RunningSimulator, rows: list[Row], kind: str) -> None:
    wanted = expect(rows, lambda r, h: r["local_image_type"] == kind)
    assert wanted
    assert served(sim, enterprise_project_id=ALL, local_image_type=kind) == wanted


def test_image_size_is_exact(sim: RunningSimulator, rows: list[Row]) -> None:
    size = rows[17][0]["image_size"]
    wanted = expect(rows, lambda r, h: r["image_size"] == size)
    assert served(sim, enterprise_project_id=ALL, image_size=size) == wanted
    assert served(sim, enterprise_project_id=ALL, image_size=size + 1) == expect(
        rows, lambda r, h: r["image_size"] == size + 1
    )


def test_update_time_range_is_inclusive(sim: RunningSimulator, rows: list[Row]) -> None:
    times = sorted(r["latest_update_time"] for r, _ in rows)
    start, end = times[200], times[900]
    wanted = expect(rows, lambda r, h: start <= r["latest_update_time"] <= end)
    assert len(wanted) == 701
    got = served(
        sim, enterprise_project_id=ALL, start_latest_update_time=start, end_latest_update_time=end
    )
    assert got == wanted
    assert served(sim, enterprise_project_id=ALL, start_latest_update_time=start) == expect(
        rows, lambda r, h: r["latest_update_time"] >= start
    )
    assert served(sim, enterprise_project_id=ALL, end_latest_update_time=end) == expect(
        rows, lambda r, h: r["latest_update_time"] <= end
    )
    assert (
        served(
            sim,
            enterprise_project_id=ALL,
            start_latest_update_time=end + 1,
            end_latest_update_time=start,
        )
        == []
    )


def test_scan_time_range_excludes_never_scanned(sim: RunningSimulator, rows: list[Row]) -> None:
    times = sorted(scan_time(r) for r, _ in rows if scan_time(r))
    start, end = times[50], times[400]
    wanted = expect(rows, lambda r, h: scan_time(r) != 0 and start <= scan_time(r) <= end)
    assert len(wanted) == 351
    got = served(
        sim, enterprise_project_id=ALL, start_latest_scan_time=start, end_latest_scan_time=end
    )
    assert got == wanted
    everything = served(sim, enterprise_project_id=ALL, start_latest_scan_time=0)
    assert everything == expect(rows, lambda r, h: scan_time(r) != 0)
    assert len(everything) < 1500


@pytest.mark.parametrize("flag", [True, False])
def test_has_vul(sim: RunningSimulator, rows: list[Row], flag: bool) -> None:
    wanted = expect(rows, lambda r, h: (r["vul_num"] > 0) == flag)
    assert wanted
    assert served(sim, enterprise_project_id=ALL, has_vul=flag) == wanted


@pytest.mark.parametrize("flag", [True, False])
def test_has_container(sim: RunningSimulator, rows: list[Row], flag: bool) -> None:
    wanted = expect(rows, lambda r, h: (r["container_num"] > 0) == flag)
    assert wanted
    assert wanted == expect(rows, lambda r, h: h.has_container == flag)
    assert served(sim, enterprise_project_id=ALL, has_container=flag) == wanted


def test_host_filters(sim: RunningSimulator, rows: list[Row]) -> None:
    record, hidden = rows[3]
    by_name = expect(rows, lambda r, h: "node" in r["host_name"])
    assert by_name
    assert served(sim, enterprise_project_id=ALL, host_name="node") == by_name
    host_id = record["host_id"]
    wanted_id = expect(rows, lambda r, h: r["host_id"] == host_id)
    assert served(sim, enterprise_project_id=ALL, host_id=host_id) == wanted_id
    assert served(sim, enterprise_project_id=ALL, host_id=host_id[:-1]) == []
    ip = hidden.host_ip
    wanted_ip = expect(rows, lambda r, h: h.host_ip == ip)
    assert record["image_id"] in wanted_ip
    assert served(sim, enterprise_project_id=ALL, host_ip=ip) == wanted_ip
    assert served(sim, enterprise_project_id=ALL, host_ip=ip.rsplit(".", 1)[0]) == []


def test_container_and_pod_filters(sim: RunningSimulator, rows: list[Row]) -> None:
    record, hidden = next((r, h) for r, h in rows if h.pod_ids and len(h.container_ids) > 1)
    container_id = hidden.container_ids[0]
    assert served(sim, enterprise_project_id=ALL, container_id=container_id) == [record["image_id"]]
    assert served(sim, enterprise_project_id=ALL, container_id=container_id[:12]) == []
    pod_id = hidden.pod_ids[0]
    assert served(sim, enterprise_project_id=ALL, pod_id=pod_id) == [record["image_id"]]
    assert served(sim, enterprise_project_id=ALL, pod_name="payments-api") == expect(
        rows, lambda r, h: any("payments-api" in n for n in h.pod_names)
    )
    assert served(sim, enterprise_project_id=ALL, container_name="gateway") == expect(
        rows, lambda r, h: any("gateway" in n for n in h.container_names)
    )


def test_app_name_is_partial(sim: RunningSimulator, rows: list[Row]) -> None:
    wanted = expect(rows, lambda r, h: any("ssl" in app for app in h.apps))
    assert wanted
    assert served(sim, enterprise_project_id=ALL, app_name="ssl") == wanted
    assert all(r["scan_status"] == "success" for r, h in rows if h.apps)


def test_filters_combine(sim: RunningSimulator, rows: list[Row]) -> None:
    wanted = expect(
        rows,
        lambda r, h: (
            h.enterprise_project_id == "0"
            and r["scan_status"] == "success"
            and r["vul_num"] > 0
            and r["local_image_type"] == "swr_image"
            and r["container_num"] > 0
        ),
    )
    assert wanted
    got = served(
        sim, scan_status="success", has_vul=True, local_image_type="swr_image", has_container=True
    )
    assert got == wanted


def test_unknown_and_empty_parameters_are_ignored(sim: RunningSimulator) -> None:
    baseline = served(sim)
    assert served(sim, colour="blue", image_name="", host_id="") == baseline


def test_paging_through_a_filtered_result(sim: RunningSimulator, rows: list[Row]) -> None:
    wanted = expect(rows, lambda r, h: r["scan_status"] == "success")
    got = ids(crawl(sim.url(PROJECT), limit=10, enterprise_project_id=ALL, scan_status="success"))
    assert got == wanted
    assert sim.inventory.records(PROJECT, enterprise_project_id=ALL, scan_status="success") == [
        r for r, _ in rows if r["scan_status"] == "success"
    ]
