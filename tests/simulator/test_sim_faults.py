"""Transport and data faults, over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

import aiohttp
import pytest
from sim_http import crawl, get, get_many, ids

from connector.simulator import (
    DataFaultKind,
    FaultConfig,
    Inventory,
    ProjectFailure,
    SimulatorConfig,
    simulator_in_thread,
)

ALL = "all_granted_eps"


def only(**faults: Any) -> SimulatorConfig:
    return SimulatorConfig(records=120, faults=FaultConfig(**faults))


def test_http_500() -> None:
    with simulator_in_thread(only(http_500_rate=1.0)) as sim:
        reply = get(sim.url("p"))
        assert reply.status == 500
        assert reply.json()["error_code"] == "HSS.0500"
        assert len(reply.headers["X-Request-Id"]) == 32
        assert sim.stats.faults["http_500"] == 1


def test_http_503_gateway_page() -> None:
    with simulator_in_thread(only(http_503_rate=1.0)) as sim:
        reply = get(sim.url("p"))
        assert reply.status == 503
        assert reply.headers["Content-Type"].startswith("text/html")
        assert b"503 Service Temporarily Unavailable" in reply.body
        with pytest.raises(json.JSONDecodeError):
            json.loads(reply.body)


def test_connection_reset() -> None:
    with simulator_in_thread(only(reset_rate=1.0)) as sim:
        with pytest.raises(aiohttp.ClientConnectionError):
            get(sim.url("p"))
        entry = sim.stats.log[-1]
        assert (entry.status, entry.fault) == (0, "reset")


def test_truncated_body() -> None:
    with simulator_in_thread(only(truncate_rate=1.0)) as sim:
        url = sim.url("p")

        async def main() -> None:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                assert response.status == 200
                declared = int(response.headers["Content-Length"])
                received = b""
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for chunk in response.content.iter_any():
                        received += chunk
                assert 0 < len(received) < declared

        asyncio.run(main())
        assert sim.stats.faults["truncated"] == 1


def test_invalid_json_with_200() -> None:
    with simulator_in_thread(only(invalid_json_rate=1.0)) as sim:
        reply = get(sim.url("p"))
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "application/json;charset=UTF-8"
        with pytest.raises(json.JSONDecodeError):
            json.loads(reply.body)


def test_html_page_with_200() -> None:
    with simulator_in_thread(only(html_rate=1.0)) as sim:
        reply = get(sim.url("p"))
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "text/html;charset=UTF-8"
        assert reply.body.startswith(b"<!DOCTYPE html>")


def test_slow_response_is_complete() -> None:
    with simulator_in_thread(only(slow_rate=1.0, slow_seconds=0.3)) as sim:
        started = time.monotonic()
        reply = get(sim.url("p"))
        assert time.monotonic() - started >= 0.3
        assert reply.status == 200
        assert reply.json()["data_list"] == sim.inventory.records("p")[:10]


def statuses(config: SimulatorConfig, count: int, project: str = "p") -> list[int]:
    with simulator_in_thread(config) as sim:
        return [r.status for r in get_many(sim.url(project), [{}] * count)]


def test_transport_faults_are_deterministic_by_seed() -> None:
    faults = FaultConfig(http_500_rate=0.3, http_503_rate=0.2)
    first = statuses(SimulatorConfig(seed=1, records=20, faults=faults), 40)
    again = statuses(SimulatorConfig(seed=1, records=20, faults=faults), 40)
    other = statuses(SimulatorConfig(seed=2, records=20, faults=faults), 40)
    assert first == again
    assert first != other
    assert {200, 500, 503} == set(first)


def test_bursts_repeat_the_fault() -> None:
    faults = FaultConfig(http_500_rate=0.1, burst=3)
    got = statuses(SimulatorConfig(seed=3, records=20, faults=faults), 120)
    runs = [len(list(g)) for status, g in itertools.groupby(got) if status == 500]
    assert runs
    assert all(run >= 4 for run in runs[:-1])  # the last burst may be cut off by the end


def test_transport_faults_limited_to_projects() -> None:
    config = SimulatorConfig(
        records=20, faults=FaultConfig(http_500_rate=1.0, projects=frozenset({"bad"}))
    )
    with simulator_in_thread(config) as sim:
        assert get(sim.url("bad")).status == 500
        assert get(sim.url("good")).status == 200


def test_project_failure_first_n_then_ok() -> None:
    failure = ProjectFailure(count=2, status=403, error_code="HSS.0013")
    config = SimulatorConfig(records=20, faults=FaultConfig(project_failures={"p1": failure}))
    with simulator_in_thread(config) as sim:
        replies = get_many(sim.url("p1"), [{}] * 3)
        assert [r.status for r in replies] == [403, 403, 200]
        assert replies[0].json()["error_code"] == "HSS.0013"
        assert get(sim.url("p2")).status == 200
        assert sim.stats.project("p1").faults["project_failure"] == 2


def test_project_failure_always_defaults_to_400() -> None:
    config = SimulatorConfig(
        records=20, faults=FaultConfig(project_failures={"p1": ProjectFailure()})
    )
    with simulator_in_thread(config) as sim:
        replies = get_many(sim.url("p1"), [{}] * 5)
        assert {r.status for r in replies} == {400}
        assert {r.json()["error_code"] for r in replies} == {"HSS.0013"}


def test_fault_config_is_validated() -> None:
    with pytest.raises(ValueError, match="sum"):
        FaultConfig(http_500_rate=0.6, reset_rate=0.6)
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(fraction_rate=1.5)


# -- data faults -------------------------------------------------------------------------

INTEGER_FIELDS = (
    "image_size",
    "latest_update_time",
    "latest_scan_time",
    "vul_num",
    "unsafe_setting_num",
    "malicious_file_num",
    "host_num",
    "container_num",
    "component_num",
)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00")
DATA_FAULTS = FaultConfig(
    numeric_string_rate=0.15,
    fraction_rate=0.1,
    iso_date_rate=0.1,
    missing_field_rate=0.15,
    extra_field_rate=0.1,
)


def test_data_faults_are_served_as_declared() -> None:
    config = SimulatorConfig(seed=9, records=800, faults=DATA_FAULTS)
    with simulator_in_thread(config) as sim:
        served = crawl(sim.url("p"), enterprise_project_id=ALL)
        assert served == sim.inventory.records("p", enterprise_project_id=ALL)
        faults = sim.inventory.data_faults("p", enterprise_project_id=ALL)
    fault_free = Inventory(SimulatorConfig(seed=9, records=800))
    reference = {r["image_id"]: r for r in fault_free.records("p", enterprise_project_id=ALL)}

    kinds = {kind: 0 for kind in DataFaultKind}
    for record in served:
        original = reference[record["image_id"]]
        record_faults = faults.get(record["image_id"], ())
        touched = {fault.field for fault in record_faults}
        for fault in record_faults:
            kinds[fault.kind] += 1
            value = record.get(fault.field)
            if fault.kind is DataFaultKind.NUMERIC_STRING:
                assert value == str(original[fault.field])
            elif fault.kind is DataFaultKind.FRACTION:
                assert isinstance(value, float) and value != int(value)
            elif fault.kind is DataFaultKind.ISO_DATE:
                assert isinstance(value, str) and ISO.fullmatch(value)
            elif fault.kind is DataFaultKind.MISSING_FIELD:
                assert fault.field not in record and fault.field in original
            else:
                assert fault.field in record and fault.field not in original
        # Everything not declared is served exactly as the fault-free inventory has it.
        assert {k: v for k, v in record.items() if k not in touched} == {
            k: v for k, v in original.items() if k not in touched
        }
        if not record_faults:
            assert all(type(record[f]) is int for f in INTEGER_FIELDS if f in record)
    assert all(20 <= count <= 200 for count in kinds.values()), kinds

    quarantine = {image_id for image_id, fs in faults.items() if any(not f.lossless for f in fs)}
    assert quarantine == sim.inventory.quarantine_ids("p", enterprise_project_id=ALL)
    assert 0 < len(quarantine) < len(faults) < len(served)
    lossy_kinds = {f.kind for fs in faults.values() for f in fs if not f.lossless}
    assert lossy_kinds == {DataFaultKind.FRACTION, DataFaultKind.ISO_DATE}


def test_data_faults_are_a_property_of_the_record() -> None:
    config = SimulatorConfig(seed=4, records=300, faults=DATA_FAULTS)
    with simulator_in_thread(config) as sim:
        first = get_many(sim.url("p"), [{"offset": 40, "limit": 100}] * 2)
        faults = sim.inventory.data_faults("p")
    with simulator_in_thread(config) as sim2:
        second = get(sim2.url("p"), {"offset": 40, "limit": 100})
        assert sim2.inventory.data_faults("p") == faults
    assert first[0].body == first[1].body == second.body
    page_ids = set(ids(first[0].json()["data_list"]))
    assert page_ids & set(faults)


def test_image_id_is_never_faulted() -> None:
    config = SimulatorConfig(
        seed=4,
        records=200,
        faults=FaultConfig(numeric_string_rate=1, missing_field_rate=1, extra_field_rate=1),
    )
    with simulator_in_thread(config) as sim:
        records = crawl(sim.url("p"), enterprise_project_id=ALL)
    assert len(records) == 200
    assert all(isinstance(r["image_id"], str) for r in records)
    assert all("risk_score" in r and "image_labels" in r for r in records)
