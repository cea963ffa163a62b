"""The simulator's days (``--day N``): deterministic by seed, each day's changes as
recorded, filters and drift consistent with the day served (no HTTP but the flags)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

import pytest

from connector.simulator import Inventory, SimulatorConfig, natural_key
from connector.simulator.cli import add_arguments, config_from_args

ALL = {"enterprise_project_id": "all_granted_eps"}
BASE = SimulatorConfig(seed=9, records=2_000, shared_image_rate=0.2)


def _keyed(config: SimulatorConfig) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {natural_key(r): r for r in Inventory(config).distinct_records("p", **ALL)}


def test_a_day_is_the_same_for_the_same_seed_and_another_for_another() -> None:
    day3 = Inventory(replace(BASE, day=3)).records("p", **ALL)
    assert day3 == Inventory(replace(BASE, day=3)).records("p", **ALL)
    assert day3 != Inventory(replace(BASE, day=3, seed=10)).records("p", **ALL)
    assert day3 != Inventory(replace(BASE, day=2)).records("p", **ALL)
    assert Inventory(replace(BASE, day=0)).records("p", **ALL) == Inventory(BASE).records(
        "p", **ALL
    )


@pytest.mark.parametrize("day", [1, 2, 5])
def test_each_day_changes_the_day_before_as_its_record_says(day: int) -> None:
    before, after = _keyed(replace(BASE, day=day - 1)), _keyed(replace(BASE, day=day))
    inventory = Inventory(replace(BASE, day=day))
    changes = inventory.day_changes("p")[-1]
    assert changes.day == day
    nk = {
        name: {natural_key(inventory.key_record("p", k)) for k in getattr(changes, name)}
        for name in ("appeared", "removed", "rescanned")
    }
    assert nk["appeared"] == after.keys() - before.keys()
    assert nk["removed"] == before.keys() - after.keys()
    changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    assert changed == nk["rescanned"]
    present = len(before)
    assert len(nk["removed"]) == round(present * BASE.daily_remove_rate)
    assert len(nk["appeared"]) == round(present * BASE.daily_appear_rate)
    for key in nk["rescanned"]:  # a scan that finished that day
        assert after[key]["scan_status"] in ("success", "failed")
        assert after[key]["latest_scan_time"] > before[key].get("latest_scan_time", 0)
        if after[key]["scan_status"] == "success":
            assert "severity_level" in after[key]


def test_filters_and_totals_follow_the_day() -> None:
    inventory = Inventory(replace(BASE, day=2))
    every = inventory.records("p", **ALL)
    assert inventory.total("p", **ALL) == len(every)
    scanned = inventory.records("p", scan_status="success", **ALL)
    assert scanned == [r for r in every if r["scan_status"] == "success"]


def test_the_flags_reach_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--day",
            "4",
            "--daily-appear-rate",
            "0.1",
            "--daily-remove-rate",
            "0",
            "--daily-rescan-rate",
            "0.5",
        ]
    )
    config = config_from_args(args, {})
    assert (config.day, config.daily_appear_rate, config.daily_remove_rate) == (4, 0.1, 0.0)
    assert config.daily_rescan_rate == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"day": -1}, "day must be >= 0"),
        ({"daily_appear_rate": 1.5}, "daily_appear_rate must be a probability"),
        ({"daily_remove_rate": 0.6, "daily_rescan_rate": 0.6}, "at most 1"),
    ],
)
def test_bad_days_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(BASE, **changes)
