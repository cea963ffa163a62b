"""The Airflow hook and operator against the simulator over real sockets: test_connection,
on_kill during a run, ``project_ids: all`` through IAM. The stand-in Airflow is
tests/unit/test_airflow_hook.py's (its fixtures ``airflow`` and ``module``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit import test_airflow_hook as stand_in
from tests.unit.test_airflow_hook import TOKEN, FakeTaskInstance, StandIn, operator

airflow = stand_in.airflow  # the fixtures of the operator's stand-in Airflow
module = stand_in.module


@pytest.fixture
def hss() -> Any:
    from connector.simulator import SimulatorConfig, simulator_in_thread

    config = SimulatorConfig(records=25, tokens=frozenset({TOKEN}), seed=3)
    with simulator_in_thread(config) as running:
        yield running


def test_test_connection_reads_one_small_page_of_the_first_project(
    module: Any, airflow: StandIn, hss: Any
) -> None:
    airflow.connect(endpoint=hss.base_url, project_ids="p1,p2")

    ok, message = module.HssHook().test_connection()

    assert ok, message
    assert "project p1" in message and "25 image(s)" in message
    [request] = list(hss.stats.log)
    assert (request.project_id, request.offset, request.limit) == ("p1", 0, 10)


def test_a_connection_whose_host_and_port_are_the_simulators_reads_a_page(
    module: Any, airflow: StandIn, hss: Any
) -> None:
    """As a URI gives it (``hss://:TOKEN@127.0.0.1:PORT/http?project_ids=p7``): the host,
    port and schema fields are the endpoint; no endpoint extra."""
    host, port = hss.base_url.removeprefix("http://").split(":")
    airflow.connect(endpoint=None, host=host, port=int(port), schema="http", project_ids="p7")

    ok, message = module.HssHook().test_connection()

    assert ok, message
    assert message.startswith(f"read project p7 at {hss.base_url} (token auth)")
    [request] = list(hss.stats.log)
    assert (request.project_id, request.offset, request.limit) == ("p7", 0, 10)


def test_test_connection_fails_with_the_apis_error_code_and_not_the_secret(
    module: Any, airflow: StandIn, hss: Any
) -> None:
    wrong = "wrong-" + TOKEN[::-1]
    airflow.connect(endpoint=hss.base_url, password=wrong)

    ok, message = module.HssHook().test_connection()

    assert not ok
    assert message.startswith("AuthError: the credentials were rejected")
    assert "HTTP 401" in message and "error_code APIG.0301" in message
    assert wrong not in message


def test_test_connection_works_inside_a_running_event_loop(
    module: Any, airflow: StandIn, hss: Any
) -> None:
    """An async web server calls it from its event loop: it must not fail there."""
    import asyncio

    airflow.connect(endpoint=hss.base_url)

    async def from_a_loop() -> tuple[bool, str]:
        return module.HssHook().test_connection()  # type: ignore[no-any-return]

    ok, message = asyncio.run(from_a_loop())

    assert ok, message


def test_on_kill_stops_a_run_cleanly(module: Any, airflow: StandIn, tmp_path: Any) -> None:
    """Killed from another thread mid-run (against a slow server): the task fails, the
    staged files are removed and nothing is published."""
    import threading
    import time

    from connector.simulator import SimulatorConfig, simulator_in_thread

    slow = SimulatorConfig(records=4_000, tokens=frozenset({TOKEN}), seed=5, latency_ms=30)
    out = tmp_path / "lake"
    with simulator_in_thread(slow) as hss:
        airflow.connect(endpoint=hss.base_url, project_ids="p1,p2", rate=0, concurrency=2)
        task = operator(module, out=str(out))
        killer_done = threading.Event()
        staged: list[Any] = []

        def kill_when_under_way() -> None:
            deadline = time.monotonic() + 30
            while hss.stats.requests < 6 and time.monotonic() < deadline:
                time.sleep(0.02)
            staged.extend((tmp_path / "lake.connector" / "staging").rglob("*"))
            task.on_kill()  # returns once the run has stopped and cleaned up
            killer_done.set()

        killer = threading.Thread(target=kill_when_under_way)
        killer.start()
        started = time.monotonic()
        with pytest.raises(airflow.AirflowException, match="stopped \\(on_kill\\)") as caught:
            task.execute({"ti": FakeTaskInstance()})
        killer.join(30)

    assert killer_done.is_set()
    assert staged, "the run was staging files when it was killed"
    assert not isinstance(caught.value, airflow.AirflowFailException)
    assert time.monotonic() - started < 20  # stopped, not run to its end
    assert 6 <= hss.stats.requests < 4_000 * 2 / 200
    assert not list(out.rglob("*.parquet")), "nothing half-published"
    assert not (tmp_path / "lake.connector" / "staging").exists(), "staging removed"
    assert task._running is None


@contextlib.contextmanager
def _listing(airflow: StandIn, *projects: Any) -> Iterator[Any]:
    """A simulator whose IAM lists ``projects``, and a connection with ``project_ids: all``
    pointing at it (its host names no region, so the region and IAM endpoint are given)."""
    from connector.simulator import SimulatorConfig, simulator_in_thread

    config = SimulatorConfig(records=5, tokens=frozenset({TOKEN}), iam_projects=projects)
    with simulator_in_thread(config) as iam:
        airflow.connect(
            endpoint=iam.base_url,
            project_ids="all",
            discovery_region="cn-north-4",
            iam_endpoint=iam.base_url,
        )
        yield iam


def test_project_ids_all_lists_the_regions_projects_through_iam(
    module: Any, airflow: StandIn
) -> None:
    """The example DAG fans out over ``HssHook.project_ids()``: with ``all`` those are the
    enabled projects of the region that IAM lists, in IAM's order."""
    from connector.simulator import IamProject

    with _listing(
        airflow,
        IamProject("a0000000000000000000000000000001", "cn-north-4"),
        IamProject("a0000000000000000000000000000002", "cn-east-3"),
        IamProject("a0000000000000000000000000000003", "cn-north-4_old", enabled=False),
        IamProject("a0000000000000000000000000000004", "cn-north-4_dev"),
    ) as iam:
        listed = module.HssHook().project_ids()
        hss_requests = len(iam.stats.log)
    assert listed == [
        "a0000000000000000000000000000001",
        "a0000000000000000000000000000004",
    ]
    assert hss_requests == 0  # listing reads no image


def test_project_ids_all_with_nothing_to_read_is_a_loud_error(
    module: Any, airflow: StandIn
) -> None:
    from connector.errors import DiscoveryError
    from connector.simulator import IamProject

    east = IamProject("a0000000000000000000000000000002", "cn-east-3")
    with (
        _listing(airflow, east),
        pytest.raises(DiscoveryError, match="no enabled project of region cn-north-4"),
    ):
        module.HssHook().project_ids()
