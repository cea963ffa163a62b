"""A probe (the Airflow "Test" button, ``hss-images check``) gives up within 10 s when IAM
or the endpoint cannot be reached: a port nothing listens on (refused at once) or a socket
that accepts and never answers (a hanging server). It tries once; a sync still retries."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.job.check import PROBE_TIMEOUT_S
from tests.commands import Cli
from tests.unit import test_airflow_hook as stand_in
from tests.unit.test_airflow_hook import TOKEN, StandIn

airflow = stand_in.airflow  # the fixtures of the stand-in Airflow
module = stand_in.module

LIMIT_S = 10.0
"""What a probe may take at most (an Airflow "Test" button's patience)."""


@contextlib.contextmanager
def _refusing() -> Iterator[str]:
    """A loopback URL whose port nothing listens on (bound, never listening: no other
    test can take it meanwhile)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@contextlib.contextmanager
def _hanging() -> Iterator[str]:
    """A loopback URL whose server accepts connections (the kernel's backlog) and never
    answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


UNREACHABLE = {"refused": _refusing, "hanging": _hanging}


@pytest.fixture
def hss() -> Any:
    from connector.simulator import SimulatorConfig, simulator_in_thread

    config = SimulatorConfig(records=5, tokens=frozenset({TOKEN}), seed=4)
    with simulator_in_thread(config) as running:
        yield running


def _timed_test(module: Any) -> tuple[bool, str, float]:
    started = time.monotonic()
    ok, message = module.HssHook().test_connection()
    return ok, message, time.monotonic() - started


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_the_test_button_gives_up_on_an_unreachable_iam(
    module: Any, airflow: StandIn, hss: Any, kind: str
) -> None:
    with UNREACHABLE[kind]() as iam:
        airflow.connect(
            endpoint=hss.base_url,
            project_ids="all",
            discovery_region="cn-north-4",
            iam_endpoint=iam,
        )
        ok, message, took = _timed_test(module)

    assert not ok
    assert took < LIMIT_S, message
    assert message.startswith("TransportError: ")
    if kind == "hanging":
        assert f"no answer from IAM at {iam} (listing the projects) within" in message
    else:
        assert "IAM" in message and iam.removeprefix("http://") in message
    assert len(hss.stats.log) == 0  # no page was asked for


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_the_test_button_gives_up_on_an_unreachable_endpoint(
    module: Any, airflow: StandIn, kind: str
) -> None:
    with UNREACHABLE[kind]() as endpoint:
        airflow.connect(endpoint=endpoint, project_ids="p1")
        ok, message, took = _timed_test(module)

    assert not ok
    assert took < LIMIT_S, message
    assert message.startswith("TransportError: ")
    assert endpoint.removeprefix("http://") in message
    if kind == "hanging":
        assert f"within {PROBE_TIMEOUT_S:g} s" in message


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_check_gives_up_on_an_unreachable_iam_or_endpoint(
    cli: Cli, hss: Any, tmp_path: Path, kind: str
) -> None:
    env = {"HSS_AUTH_TOKEN": TOKEN}
    out = str(tmp_path / "lake")
    with UNREACHABLE[kind]() as nowhere:
        started = time.monotonic()
        iam = cli(
            "check", "--endpoint", hss.base_url, "--all-projects", "--discovery-region",
            "cn-north-4", "--iam-endpoint", nowhere, "--out", out, env=env, timeout=60,
        )  # fmt: skip
        iam_took = time.monotonic() - started
        started = time.monotonic()
        endpoint = cli(
            "check", "--endpoint", nowhere, "--project-id", "p1", "--out", out,
            env=env, timeout=60,
        )  # fmt: skip
        endpoint_took = time.monotonic() - started

    assert iam.returncode == endpoint.returncode == 3, (iam.stderr, endpoint.stderr)
    assert iam_took < LIMIT_S and endpoint_took < LIMIT_S
    assert "(all projects)" in iam.stdout and "TransportError" in iam.stdout
    assert "p1" in endpoint.stdout and "TransportError" in endpoint.stdout
    assert nowhere in endpoint.stdout
    assert len(hss.stats.log) == 0
    assert not (tmp_path / "lake").exists()  # a check writes nothing
