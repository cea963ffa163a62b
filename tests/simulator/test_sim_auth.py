"""Gateway authentication: tokens and AK/SK signatures, 401 APIG.0301 / APIG.0307 bodies
with request_id, the lock-out after failed signatures, and the rate-limit identity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sim_http import Reply, get, get_signed, get_url, signed

from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread
from connector.simulator.auth import LockOut
from connector.source.signing import AkSkCredentials

GOOD, OLD = "good-token-abc", "expired-token-xyz"
AK, SK = "HPUAGOODACCESSKEY001", "good-secret-key-0123456789abcdefghijklmn"
TEMP_AK, TEMP_SK, STS = "HSTATEMPORARYKEY0001", "temp-secret-key-987654321", "sts-token-" + "x" * 60
OTHER_AK, OTHER_SK = "HPUAOTHERACCESSKEY02", "other-secret-key-0123456789"
CREDS = AkSkCredentials(AK, SK)
TEMP = AkSkCredentials(TEMP_AK, TEMP_SK, STS)
KEYS = {AK: SK, TEMP_AK: TEMP_SK, OTHER_AK: OTHER_SK}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        records=50,
        tokens=frozenset({GOOD}),
        expired_tokens=frozenset({OLD}),
        access_keys=KEYS,
        security_tokens={TEMP_AK: STS},
        lockout_failures=0,  # this module's failures must not lock the shared keys
    )
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


# -- tokens --------------------------------------------------------------------------------


def test_valid_token(sim: RunningSimulator) -> None:
    assert get(sim.url("p"), headers={"X-Auth-Token": GOOD}).status == 200
    assert get(sim.url("p"), headers={"x-auth-token": GOOD}).status == 200


def test_missing_credentials(sim: RunningSimulator) -> None:
    message = assert_gateway_401(get(sim.url("p")), "APIG.0301")
    assert message == "Incorrect IAM authentication information: x-auth-token not found"


def test_wrong_token(sim: RunningSimulator) -> None:
    reply = get(sim.url("p"), headers={"X-Auth-Token": GOOD + "x"})
    assert assert_gateway_401(reply, "APIG.0301").startswith("Incorrect IAM authentication")


def test_expired_token(sim: RunningSimulator) -> None:
    reply = get(sim.url("p"), headers={"X-Auth-Token": OLD})
    assert assert_gateway_401(reply, "APIG.0307") == "The token must be updated."


def test_auth_comes_before_validation(sim: RunningSimulator) -> None:
    assert get(sim.url("p"), {"limit": 5}).status == 401
    assert get(sim.url("p"), {"limit": 5}, headers={"X-Auth-Token": GOOD}).status == 400
    assert get_signed(sim.url("p"), CREDS, {"limit": 5}, project_id="p").status == 400


# -- AK/SK ---------------------------------------------------------------------------------


def test_signed_request_is_accepted(sim: RunningSimulator) -> None:
    params = {"offset": 10, "limit": 10, "image_name": "a b/c~d", "has_vul": False}
    reply = get_signed(sim.url("p"), CREDS, params, project_id="p")
    assert reply.status == 200, reply.body
    assert reply.json()["total_num"] == sim.inventory.total("p", image_name="a b/c~d")
    # X-Project-Id is optional for the signature: the SDK sends it, others need not
    assert get_signed(sim.url("p"), CREDS).status == 200


def test_project_ids_that_need_encoding_are_signed_and_verified(sim: RunningSimulator) -> None:
    assert get_signed(sim.url("a b~c"), CREDS, {"limit": 10}, project_id="a b~c").status == 200


def test_wrong_secret_key(sim: RunningSimulator) -> None:
    reply = get_signed(sim.url("p"), AkSkCredentials(AK, "not-the-secret-key"))
    message = assert_gateway_401(reply, "APIG.0301")
    assert message.startswith("Incorrect IAM authentication information: verify aksk signature")
    assert "signature does not match" in message
    assert SK not in reply.body.decode() and "not-the-secret-key" not in reply.body.decode()
    assert AK not in message  # only its first characters
    assert "HPUA***" in message


def test_unknown_access_key(sim: RunningSimulator) -> None:
    reply = get_signed(sim.url("p"), AkSkCredentials("UNKNOWNACCESSKEY", SK))
    assert "unknown access key UNKN***" in assert_gateway_401(reply, "APIG.0301")


@pytest.mark.parametrize(
    ("skew", "status"),
    [(timedelta(minutes=14), 200), (timedelta(minutes=-14), 200), (timedelta(minutes=16), 401)],
)
def test_signature_age_is_checked(sim: RunningSimulator, skew: timedelta, status: int) -> None:
    reply = get_signed(sim.url("p"), CREDS, now=datetime.now(UTC) - skew)
    assert reply.status == status
    if status == 401:
        assert "stale X-Sdk-Date" in assert_gateway_401(reply, "APIG.0301")


def test_a_request_changed_after_signing_is_refused(sim: RunningSimulator) -> None:
    url, headers = signed(sim.url("p"), CREDS, {"offset": 0, "limit": 10})
    reply = get_url(url.with_query({"offset": "10", "limit": "10"}), headers)
    assert "signature does not match" in assert_gateway_401(reply, "APIG.0301")
    other_project, _ = signed(sim.url("q"), CREDS, {"offset": 0, "limit": 10})
    reply = get_url(other_project, headers)
    assert "signature does not match" in assert_gateway_401(reply, "APIG.0301")


def test_malformed_authorization(sim: RunningSimulator) -> None:
    authorization = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=00"
    reply = get(sim.url("p"), headers={"Authorization": authorization})
    assert "malformed Authorization" in assert_gateway_401(reply, "APIG.0301")


def test_temporary_credentials_need_their_security_token(sim: RunningSimulator) -> None:
    assert get_signed(sim.url("p"), TEMP, project_id="p").status == 200
    missing = get_signed(sim.url("p"), AkSkCredentials(TEMP_AK, TEMP_SK))
    assert "X-Security-Token is missing" in assert_gateway_401(missing, "APIG.0301")
    wrong = get_signed(sim.url("p"), AkSkCredentials(TEMP_AK, TEMP_SK, STS + "y"))
    assert "X-Security-Token does not belong" in assert_gateway_401(wrong, "APIG.0301")
    permanent = get_signed(sim.url("p"), AkSkCredentials(AK, SK, STS))
    assert "permanent key" in assert_gateway_401(permanent, "APIG.0301")
    for reply in (missing, wrong, permanent):
        assert STS not in reply.body.decode()


def test_the_access_key_is_the_rate_limit_identity() -> None:
    """Two projects read with one AK share its bucket; another AK has its own."""
    config = SimulatorConfig(records=20, access_keys=KEYS, rate=1, burst=2)
    with simulator_in_thread(config) as sim:
        assert get_signed(sim.url("p1"), CREDS, project_id="p1").status == 200
        assert get_signed(sim.url("p2"), CREDS, project_id="p2").status == 200
        throttled = get_signed(sim.url("p3"), CREDS, project_id="p3")
        assert throttled.status == 429 and throttled.json()["error_code"] == "APIG.0308"
        other = AkSkCredentials(OTHER_AK, OTHER_SK)
        assert get_signed(sim.url("p3"), other, project_id="p3").status == 200
        assert sim.stats.error_codes == {"APIG.0308": 1}


def test_auth_errors_are_counted_by_code(sim: RunningSimulator) -> None:
    sim.stats.reset()
    get(sim.url("p"), headers={"X-Auth-Token": OLD})
    get_signed(sim.url("p"), AkSkCredentials(AK, "wrong"))
    get_signed(sim.url("p"), CREDS)
    assert sim.stats.error_codes == {"APIG.0307": 1, "APIG.0301": 1}
    assert [e.error_code for e in sim.stats.log] == ["APIG.0307", "APIG.0301", None]


# -- lock-out ------------------------------------------------------------------------------


def lockout_sim(**changes: object) -> SimulatorConfig:
    base = SimulatorConfig(records=20, access_keys=KEYS, lockout_failures=5, lockout_s=0.6)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_five_failed_signatures_lock_the_key_then_it_unlocks() -> None:
    wrong = AkSkCredentials(AK, "wrong-secret")
    with simulator_in_thread(lockout_sim()) as sim:
        for n in range(5):
            message = assert_gateway_401(get_signed(sim.url("p"), wrong), "APIG.0301")
            assert ("now locked" in message) == (n == 4), (n, message)
        locked = get_signed(sim.url("p"), CREDS)  # even the right key is refused now
        message = assert_gateway_401(locked, "APIG.0301")
        assert "locked" in message and "after 5 failed signatures in a row" in message
        assert SK not in locked.body.decode()
        other = AkSkCredentials(OTHER_AK, OTHER_SK)
        assert get_signed(sim.url("p"), other).status == 200  # one key only
        assert get(sim.url("p")).status == 401
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while get_signed(sim.url("p"), CREDS).status != 200:
            assert datetime.now(UTC) < deadline, "the lock was not lifted"
        # lifted: the count starts again from zero
        for _ in range(4):
            assert get_signed(sim.url("p"), wrong).status == 401
        assert get_signed(sim.url("p"), CREDS).status == 200


def test_a_success_resets_the_count_and_unknown_keys_lock_nothing() -> None:
    wrong = AkSkCredentials(AK, "wrong-secret")
    with simulator_in_thread(lockout_sim(lockout_s=300)) as sim:
        for _ in range(3):
            for _ in range(4):
                assert get_signed(sim.url("p"), wrong).status == 401
            assert get_signed(sim.url("p"), CREDS).status == 200
        for _ in range(6):
            assert get_signed(sim.url("p"), AkSkCredentials("NOSUCHKEY", SK)).status == 401
        # a stale date counts as a failed signature too
        stale = datetime.now(UTC) - timedelta(hours=1)
        for _ in range(5):
            assert get_signed(sim.url("p"), CREDS, now=stale).status == 401
        assert "locked" in assert_gateway_401(get_signed(sim.url("p"), CREDS), "APIG.0301")


def test_lockout_can_be_switched_off() -> None:
    with simulator_in_thread(lockout_sim(lockout_failures=0)) as sim:
        for _ in range(8):
            assert get_signed(sim.url("p"), AkSkCredentials(AK, "wrong")).status == 401
        assert get_signed(sim.url("p"), CREDS).status == 200


def test_lockout_is_pure_and_driven_by_the_given_time() -> None:
    lock = LockOut(limit=3, seconds=10)
    assert not lock.failed("a", 0) and not lock.failed("a", 1)
    assert lock.failed("a", 2)
    assert lock.locked_for("a", 2) == 10 and lock.locked_for("a", 11.5) == pytest.approx(0.5)
    assert lock.locked_for("b", 5) == 0
    assert lock.locked_for("a", 12) == 0 and lock.failures("a") == 0
    lock.failed("a", 13)
    lock.succeeded("a")
    assert lock.failures("a") == 0
    never = LockOut(limit=0, seconds=10)
    assert not any(never.failed("a", t) for t in range(10))


# -- configuration -------------------------------------------------------------------------


def test_secrets_are_not_in_the_config_repr() -> None:
    config = SimulatorConfig(
        tokens=frozenset({GOOD}),
        expired_tokens=frozenset({OLD}),
        access_keys=KEYS,
        security_tokens={TEMP_AK: STS},
        iam_users={("domain", "user"): "pa55word-secret"},
    )
    text = repr(config)
    for secret in (GOOD, OLD, SK, TEMP_SK, OTHER_SK, STS, "pa55word-secret"):
        assert secret not in text
    assert config.auth_enabled and config.auth_methods == ("token", "AK/SK", "IAM")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"access_keys": {AK: ""}}, ValueError),
        ({"access_keys": [AK, SK]}, TypeError),
        ({"access_keys": {AK: SK}, "security_tokens": {TEMP_AK: STS}}, ValueError),
        ({"iam_users": {"user": "pw"}}, ValueError),
        ({"iam_users": {("d", "u"): ""}}, ValueError),
        ({"iam_token_ttl_s": 0}, ValueError),
        ({"lockout_s": -1}, ValueError),
        ({"lockout_failures": -1}, ValueError),
        ({"signature_max_skew_s": float("nan")}, ValueError),
    ],
)
def test_invalid_credential_settings(changes: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        SimulatorConfig(**changes)  # type: ignore[arg-type]
    assert SK not in str(caught.value) and STS not in str(caught.value)


def test_auth_off_accepts_anything() -> None:
    with simulator_in_thread(SimulatorConfig(records=20)) as sim:
        assert not sim.config.auth_enabled
        assert get(sim.url("p")).status == 200
        assert get(sim.url("p"), headers={"X-Auth-Token": "whatever"}).status == 200
        assert get_signed(sim.url("p"), AkSkCredentials("ANY", "thing")).status == 200


def test_a_single_string_is_not_a_token_set() -> None:
    with pytest.raises(TypeError):
        SimulatorConfig(tokens=GOOD)  # type: ignore[arg-type]
