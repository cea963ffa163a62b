"""Token authentication: 401 APIG.0301 / APIG.0307 with request_id in the body."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_http import Reply, get

from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread

GOOD, OLD = "good-token-abc", "expired-token-xyz"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(records=50, tokens=frozenset({GOOD}), expired_tokens=frozenset({OLD}))
    with simulator_in_thread(config) as running:
        yield running


def assert_gateway_401(reply: Reply, code: str) -> str:
    assert reply.status == 401
    assert reply.headers["Content-Type"] == "application/json;charset=UTF-8"
    body = reply.json()
    assert set(body) == {"error_code", "error_msg", "request_id"}
    assert body["error_code"] == code
    assert body["request_id"] == reply.headers["X-Request-Id"]
    return str(body["error_msg"])


def test_valid_token(sim: RunningSimulator) -> None:
    assert get(sim.url("p"), headers={"X-Auth-Token": GOOD}).status == 200
    assert get(sim.url("p"), headers={"x-auth-token": GOOD}).status == 200


def test_missing_token(sim: RunningSimulator) -> None:
    message = assert_gateway_401(get(sim.url("p")), "APIG.0301")
    assert message.startswith("Incorrect IAM authentication information: ")


def test_wrong_token(sim: RunningSimulator) -> None:
    reply = get(sim.url("p"), headers={"X-Auth-Token": GOOD + "x"})
    assert assert_gateway_401(reply, "APIG.0301").startswith("Incorrect IAM authentication")


def test_expired_token(sim: RunningSimulator) -> None:
    reply = get(sim.url("p"), headers={"X-Auth-Token": OLD})
    assert assert_gateway_401(reply, "APIG.0307") == "The token must be updated."


def test_aksk_signature_is_not_verified_yet(sim: RunningSimulator) -> None:
    authorization = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=00"
    reply = get(sim.url("p"), headers={"Authorization": authorization})
    assert "aksk" in assert_gateway_401(reply, "APIG.0301")


def test_auth_comes_before_validation(sim: RunningSimulator) -> None:
    assert get(sim.url("p"), {"limit": 5}).status == 401
    assert get(sim.url("p"), {"limit": 5}, headers={"X-Auth-Token": GOOD}).status == 400


def test_token_is_not_in_the_config_repr() -> None:
    config = SimulatorConfig(tokens=frozenset({GOOD}), expired_tokens=frozenset({OLD}))
    assert GOOD not in repr(config)
    assert OLD not in repr(config)


def test_auth_off_accepts_anything() -> None:
    with simulator_in_thread(SimulatorConfig(records=20)) as sim:
        assert get(sim.url("p")).status == 200
        assert get(sim.url("p"), headers={"X-Auth-Token": "whatever"}).status == 200


def test_a_single_string_is_not_a_token_set() -> None:
    with pytest.raises(TypeError):
        SimulatorConfig(tokens=GOOD)  # type: ignore[arg-type]
