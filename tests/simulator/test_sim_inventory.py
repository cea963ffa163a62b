"""The generated inventory: determinism, realistic values, scale (no HTTP)."""

from __future__ import annotations

import gc
import re
from collections import Counter
from typing import Any

import pytest

from connector.simulator import Inventory, SimulatorConfig
from connector.simulator.filters import Filters, PageQuery
from connector.simulator.vocabulary import SCAN_FAILED_DESCS

ALL = "all_granted_eps"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
HEX64 = re.compile(r"[0-9a-f]{64}")
Y2022, Y2027 = 1_640_995_200_000, 1_798_761_600_000


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return Inventory(SimulatorConfig(seed=3, records=4000)).records("p", enterprise_project_id=ALL)


def test_same_seed_same_records_other_seed_or_project_differs() -> None:
    a = Inventory(SimulatorConfig(seed=1, records=300)).records("p", enterprise_project_id=ALL)
    b = Inventory(SimulatorConfig(seed=1, records=300)).records("p", enterprise_project_id=ALL)
    c = Inventory(SimulatorConfig(seed=2, records=300)).records("p", enterprise_project_id=ALL)
    d = Inventory(SimulatorConfig(seed=1, records=300)).records("q", enterprise_project_id=ALL)
    assert a == b
    ids_a = {r["image_id"] for r in a}
    assert not ids_a & {r["image_id"] for r in c}
    assert not ids_a & {r["image_id"] for r in d}


def test_record_count_per_project_override() -> None:
    inventory = Inventory(SimulatorConfig(records=10, project_records={"big": 2500}))
    assert inventory.record_count("anything") == 10
    assert inventory.record_count("big") == 2500


def test_identifiers(records: list[dict[str, Any]]) -> None:
    assert len({r["image_id"] for r in records}) == len(records)
    assert all(UUID.fullmatch(r["image_id"]) for r in records)
    assert all(UUID.fullmatch(r["host_id"]) for r in records)
    assert all(HEX64.fullmatch(r["agent_id"]) for r in records)
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", r["image_digest"]) for r in records)


def test_names_and_versions(records: list[dict[str, Any]]) -> None:
    names = {r["image_name"] for r in records}
    assert not any(" " in name for name in names)
    assert {"nginx", "library/redis", "prod/payments-api"} <= names
    assert "swr.cn-north-4.myhuaweicloud.com/team/app" in names
    assert any("." in name and "/" in name and "-" in name for name in names)
    versions = {r["image_version"] for r in records}
    assert {"latest", "1.25.3", "v2.3.1-alpine"} <= versions
    for r in records:
        swr = ".myhuaweicloud." in r["image_name"]
        assert r["local_image_type"] == ("swr_image" if swr else "other_image")


def test_sizes_and_times(records: list[dict[str, Any]]) -> None:
    sizes = [r["image_size"] for r in records]
    assert any(size > 2**32 for size in sizes)
    assert max(sizes) <= 20_000_000_000 and min(sizes) > 0
    assert all(Y2022 <= r["latest_update_time"] < Y2027 for r in records)
    for r in records:
        if r["scan_status"] in ("success", "failed"):
            assert r["latest_update_time"] < r["latest_scan_time"] < Y2027
        else:
            assert r.get("latest_scan_time", 0) == 0
    never = [r for r in records if r["scan_status"] not in ("success", "failed")]
    variants = Counter("latest_scan_time" in r for r in never)
    assert variants[True] > 100 and variants[False] > 100  # both 0 and absent occur


def test_scan_results_fit_the_status(records: list[dict[str, Any]]) -> None:
    statuses = Counter(r["scan_status"] for r in records)
    assert set(statuses) == {"unscan", "success", "scanning", "failed", "waiting"}
    for r in records:
        success = r["scan_status"] == "success"
        assert ("severity_level" in r) == success
        if success:
            assert r["severity_level"] in ("Security", "Low", "Medium", "High")
        else:
            assert r["vul_num"] == r["component_num"] == r["malicious_file_num"] == 0
        if r["scan_status"] == "failed":
            assert r["scan_failed_desc"] in SCAN_FAILED_DESCS
        else:
            assert r["scan_failed_desc"] == ""
    succeeded = [r for r in records if r["scan_status"] == "success"]
    assert 0.2 < sum(r["vul_num"] == 0 for r in succeeded) / len(succeeded) < 0.6
    assert {r["severity_level"] for r in succeeded} == {"Security", "Low", "Medium", "High"}
    reasons = [r for r in records if r.get("non_scan_reason")]
    assert reasons and all(r["scan_status"] == "unscan" for r in reasons)
    integer_fields = (
        "vul_num",
        "unsafe_setting_num",
        "malicious_file_num",
        "host_num",
        "container_num",
        "component_num",
        "image_size",
        "latest_update_time",
    )
    assert all(type(r[f]) is int for r in records for f in integer_fields)


def test_hidden_attributes_are_consistent() -> None:
    inventory = Inventory(SimulatorConfig(seed=3, records=500))
    records = {r["image_id"]: r for r in inventory.records("p", enterprise_project_id=ALL)}
    hidden = inventory.hidden_attributes("p", enterprise_project_id=ALL)
    assert set(hidden) == set(records)
    eps = Counter(h.enterprise_project_id for h in hidden.values())
    assert eps["0"] > 350 and len(eps) == 3
    for image_id, h in hidden.items():
        record = records[image_id]
        assert len(h.container_ids) == len(h.container_names) == record["container_num"]
        assert h.has_container == (record["container_num"] > 0)
        assert len(h.pod_ids) == len(h.pod_names) <= len(h.container_ids)
        assert re.fullmatch(r"(10|172|192)\.\d+\.\d+\.\d+", h.host_ip)
        assert bool(h.apps) == (record["scan_status"] == "success")


def test_a_million_records_are_lazy() -> None:
    inventory = Inventory(SimulatorConfig(records=1_000_000))
    last = inventory.serve_page("big", PageQuery(Filters(enterprise_project_id=ALL), 999_900, 200))
    default = inventory.serve_page("big", PageQuery(Filters(), 800_000, 200))
    # only the records served were generated, not the million behind them
    assert len(inventory._projects["big"].served) <= 300
    assert last.total == 1_000_000 and len(last.encoded) == 100
    assert 800_000 < default.total < 1_000_000 and len(default.encoded) == 200


def test_served_records_add_nothing_for_the_garbage_collector_to_scan() -> None:
    """A cache of generated records that the collector had to walk made every full
    collection stall the server (about 0.1 s at 100,000 records), and the requests that
    piled up in the meantime reached the rate limit together."""
    inventory = Inventory(SimulatorConfig(records=20_000))
    query = PageQuery(Filters(enterprise_project_id=ALL), offset=0, limit=200)
    inventory.serve_page("p", query)  # the project's own bookkeeping, created once
    gc.collect()
    before = len(gc.get_objects())
    for offset in range(200, 20_000, 200):
        inventory.serve_page("p", PageQuery(query.filters, offset=offset, limit=200))
    gc.collect()
    assert len(gc.get_objects()) - before < 1_000
