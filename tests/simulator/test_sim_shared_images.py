"""One image on several hosts: image_id is not unique, the natural key is."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
from sim_http import crawl, ids

from connector.simulator import (
    NATURAL_KEY,
    DriftConfig,
    FaultConfig,
    Inventory,
    SimulatorConfig,
    natural_key,
    simulator_in_thread,
)

ALL = "all_granted_eps"
IMAGE_FIELDS = ("image_digest", "image_name", "image_version", "local_image_type", "image_size")
HOST_FIELDS = ("host_name", "host_id", "agent_id")


def shared(rate: float = 0.2, records: int = 2000, seed: int = 8, **more: Any) -> SimulatorConfig:
    return SimulatorConfig(seed=seed, records=records, shared_image_rate=rate, **more)


def by_image(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record["image_id"]].append(record)
    return groups


def test_off_by_default_image_ids_are_unique() -> None:
    records = Inventory(SimulatorConfig(records=2000)).records("p", enterprise_project_id=ALL)
    assert len(set(ids(records))) == 2000


def test_shared_images_are_served_as_the_inventory_says() -> None:
    with simulator_in_thread(shared()) as sim:
        served = crawl(sim.url("p"), enterprise_project_id=ALL)
        truth = sim.inventory.records("p", enterprise_project_id=ALL)
    assert served == truth and len(served) == 2000
    copies = len(served) - len(set(ids(served)))
    assert 0.15 * 2000 <= copies <= 0.25 * 2000, copies  # 400 expected, sd 18
    assert NATURAL_KEY[0] == "image_id" and set(HOST_FIELDS) - set(NATURAL_KEY) == {"host_name"}
    assert len({natural_key(r) for r in served}) == len(served)
    groups = [group for group in by_image(served).values() if len(group) > 1]
    assert max(len(group) for group in groups) >= 3
    for group in groups:
        for name in IMAGE_FIELDS:  # one image ...
            assert len({record[name] for record in group}) == 1, name
        for name in HOST_FIELDS:  # ... on as many hosts
            assert len({record[name] for record in group}) == len(group), name


def test_filters_agree_with_what_is_served() -> None:
    with simulator_in_thread(shared()) as sim:
        inventory = sim.inventory
        everything = inventory.records("p", enterprise_project_id=ALL)
        copy = next(g for g in by_image(everything).values() if len(g) > 2)[-1]
        host_name = copy["host_name"]
        cases: list[dict[str, Any]] = [
            {"host_id": copy["host_id"]},
            {"host_name": host_name},
            {"image_name": copy["image_name"]},
            {"image_name": copy["image_name"], "image_version": copy["image_version"]},
            {"image_size": copy["image_size"]},
        ]
        for filters in cases:
            filters["enterprise_project_id"] = ALL
            served = crawl(sim.url("p"), limit=50, **filters)
            assert served == inventory.records("p", **filters), filters
            assert copy in served
        same_image = [r for r in everything if r["image_id"] == copy["image_id"]]
        size = crawl(sim.url("p"), enterprise_project_id=ALL, image_size=copy["image_size"])
        assert all(r in size for r in same_image)
        on_host = crawl(sim.url("p"), enterprise_project_id=ALL, host_id=copy["host_id"])
        assert all(r["host_id"] == copy["host_id"] for r in on_host)


def test_shared_images_are_deterministic_by_seed() -> None:
    def records(seed: int) -> list[dict[str, Any]]:
        return Inventory(shared(seed=seed, records=500)).records("p", enterprise_project_id=ALL)

    first = records(1)
    assert first == records(1) and first != records(2)
    assert len(set(ids(first))) < 500


def test_small_projects_have_one_host_and_no_sharing() -> None:
    records = Inventory(shared(rate=0.9, records=49)).records("p", enterprise_project_id=ALL)
    assert len(set(ids(records))) == 49


@pytest.mark.parametrize("rate", [0.5, 1.0])
def test_high_rates_keep_the_natural_key_unique(rate: float) -> None:
    records = Inventory(shared(rate=rate)).records("p", enterprise_project_id=ALL)
    assert len({natural_key(r) for r in records}) == 2000
    assert len(set(ids(records))) < (1.1 - rate) * 2000


def test_with_drift_the_truth_stays_distinct_by_natural_key() -> None:
    drift = DriftConfig(every_n_requests=1, inserts=4, deletes=2, moves=2, max_events=20)
    with simulator_in_thread(shared(records=800, drift=drift)) as sim:
        crawled = crawl(sim.url("p"), limit=20, enterprise_project_id=ALL)
        inventory = sim.inventory
        ever = inventory.ever_records("p", enterprise_project_id=ALL)
        stable = inventory.stable_records("p", enterprise_project_id=ALL)
        current = inventory.records("p", enterprise_project_id=ALL)
    ever_keys = {natural_key(r) for r in ever}
    assert len(ever_keys) == len(ever) == 800 + 80
    assert len(set(ids(ever))) < len(ever)  # inserted records share images too
    assert {natural_key(r) for r in stable} <= {natural_key(r) for r in current}
    assert {natural_key(r) for r in crawled} <= ever_keys


def test_truth_helpers_by_natural_key() -> None:
    faults = FaultConfig(fraction_rate=0.1, missing_field_rate=0.1, extra_field_rate=0.05)
    with simulator_in_thread(shared(faults=faults)) as sim:
        served = crawl(sim.url("p"), enterprise_project_id=ALL)
        inventory = sim.inventory
        by_key = inventory.data_faults_by_natural_key("p", enterprise_project_id=ALL)
        quarantine = inventory.quarantine_keys("p", enterprise_project_id=ALL)
        hidden = inventory.hidden_by_natural_key("p", enterprise_project_id=ALL)
        by_id = inventory.hidden_attributes("p", enterprise_project_id=ALL)
    keys = Counter(natural_key(r) for r in served)
    assert len(keys) == len(served)  # a dropped field counts as None, keys stay distinct
    assert set(by_key) <= set(keys) and 100 < len(by_key) < len(served)
    assert quarantine == {k for k, fs in by_key.items() if any(not f.lossless for f in fs)}
    assert quarantine
    assert set(hidden) == set(keys)
    assert len(by_id) == len(set(ids(served))) < len(hidden)
    for record in served:
        if isinstance(record.get("container_num"), int):  # not dropped or faulted
            assert hidden[natural_key(record)].has_container == (record["container_num"] > 0)
