"""The provider's official SDK (huaweicloudsdkhss) as a real client of the simulator.

What the SDK can do (huaweicloudsdkcore 3.1.219): it always signs requests with AK/SK
(``BasicCredentials``); it has no token credentials. A documented hook, an ``HttpHandler``
request handler, runs just before each request is sent and may edit its headers: it adds
``X-Auth-Token`` and drops the AK/SK ``Authorization`` header, which makes the SDK a token
client. With auth off the simulator accepts the AK/SK-signed requests unchecked; with auth
on it verifies their ``SDK-HMAC-SHA256`` signatures, so the SDK's own signer checks the
simulator's verifier (and the other way round).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkhss.v5 import HssClient, ListImageLocalRequest

from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread

PROJECT = "0f3c9e6d2b8a4d7c9e1f2a3b4c5d6e7f"
TOKEN = "sdk-test-token"
ALL = "all_granted_eps"
AK, SK = "TESTAK", "TESTSK-0123456789abcdefghij"
TEMP_AK, TEMP_SK, STS = "TEMPAK", "TEMPSK-9876543210", "sts-security-token-" + "z" * 40


def sdk_client(
    sim: RunningSimulator,
    handler: HttpHandler | None = None,
    credentials: BasicCredentials | None = None,
) -> HssClient:
    builder = (
        HssClient.new_builder()
        .with_credentials(credentials or BasicCredentials(AK, SK, PROJECT))
        .with_endpoints([sim.base_url])
    )
    if handler is not None:
        builder = builder.with_http_handler(handler)
    return builder.build()


def token_handler(token: str) -> HttpHandler:
    def send_token(**kwargs: Any) -> None:
        headers = kwargs["request"].header_params
        headers.pop("Authorization", None)
        headers["X-Auth-Token"] = token

    return HttpHandler().add_request_handler(send_token)


def sdk_crawl(client: HssClient, **filters: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        request = ListImageLocalRequest(offset=offset, limit=200, **filters)
        response = client.list_image_local(request)
        records.extend(item.to_dict() for item in response.data_list)
        offset += 200
        if offset >= response.total_num:
            return records


def same(sdk_record: dict[str, Any], served: dict[str, Any]) -> bool:
    """The SDK model has every field; those the API omitted are None."""
    return all(sdk_record.get(k) == v for k, v in served.items()) and all(
        v is None for k, v in sdk_record.items() if k not in served
    )


@pytest.fixture(scope="module")
def open_sim() -> Iterator[RunningSimulator]:
    with simulator_in_thread(SimulatorConfig(seed=8, records=700)) as sim:
        yield sim


@pytest.fixture(scope="module")
def token_sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        seed=8,
        records=300,
        tokens=frozenset({TOKEN}),
        max_offset=100,
        access_keys={AK: SK, TEMP_AK: TEMP_SK},
        security_tokens={TEMP_AK: STS},
    )
    with simulator_in_thread(config) as sim:
        yield sim


def check(sim: RunningSimulator, client: HssClient, **filters: Any) -> None:
    got = sdk_crawl(client, **filters)
    expected = sim.inventory.records(PROJECT, **filters)
    assert expected
    assert len(got) == len(expected)
    assert all(same(g, e) for g, e in zip(got, expected, strict=True))


def test_sdk_pages_and_filters_with_auth_off(open_sim: RunningSimulator) -> None:
    client = sdk_client(open_sim)
    check(open_sim, client, enterprise_project_id=ALL)
    check(
        open_sim, client, has_vul=False, scan_status="waiting_for_scan", enterprise_project_id=ALL
    )
    check(open_sim, client, has_vul=True, local_image_type="swr_image")
    check(open_sim, client, has_container=False, image_name="redis")


def test_sdk_with_a_token(token_sim: RunningSimulator) -> None:
    client = sdk_client(token_sim, token_handler(TOKEN))
    response = client.list_image_local(ListImageLocalRequest(limit=50, has_vul=False))
    expected = token_sim.inventory.records(PROJECT, has_vul=False)
    assert response.total_num == len(expected)
    assert all(same(m.to_dict(), e) for m, e in zip(response.data_list, expected[:50], strict=True))


def sdk_error(call: Callable[[], object]) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value


def test_sdk_sees_gateway_and_hss_errors(token_sim: RunningSimulator) -> None:
    wrong = sdk_client(token_sim, token_handler("wrong"))
    error = sdk_error(lambda: wrong.list_image_local(ListImageLocalRequest()))
    assert (error.status_code, error.error_code) == (401, "APIG.0301")
    assert len(error.request_id) == 32

    wrong_sk = sdk_client(token_sim, credentials=BasicCredentials(AK, "WRONG-SK", PROJECT))
    error = sdk_error(lambda: wrong_sk.list_image_local(ListImageLocalRequest()))
    assert (error.status_code, error.error_code) == (401, "APIG.0301")
    assert "verify aksk signature fail" in error.error_msg

    client = sdk_client(token_sim, token_handler(TOKEN))
    error = sdk_error(lambda: client.list_image_local(ListImageLocalRequest(limit=5)))
    assert (error.status_code, error.error_code) == (400, "HSS.0001")
    assert "limit" in error.error_msg
    error = sdk_error(lambda: client.list_image_local(ListImageLocalRequest(offset=101)))
    assert (error.status_code, error.error_code) == (400, "HSS.0001")


def test_sdk_loses_the_body_of_a_429() -> None:
    """As facts.md says: on 429 the SDK reports no error code or request id of ours."""
    config = SimulatorConfig(records=20, rate=1, burst=1, retry_after=2)
    with simulator_in_thread(config) as sim:
        client = sdk_client(sim)
        client.list_image_local(ListImageLocalRequest())
        error = sdk_error(lambda: client.list_image_local(ListImageLocalRequest()))
        assert error.status_code == 429
        assert error.error_code != "APIG.0308"
        assert sim.stats.throttled == 1  # and it did not retry


def test_sdk_aksk_signature_is_verified(token_sim: RunningSimulator) -> None:
    client = sdk_client(token_sim)  # AK/SK only, signed by the SDK's own signer
    response = client.list_image_local(ListImageLocalRequest(limit=10))
    assert response.total_num == token_sim.inventory.total(PROJECT)
    check(token_sim, client, has_vul=True, image_name="a", enterprise_project_id=ALL)


def test_sdk_with_a_wrong_secret_key_gets_401(token_sim: RunningSimulator) -> None:
    token_sim.stats.reset()
    client = sdk_client(token_sim, credentials=BasicCredentials(AK, "not-" + SK, PROJECT))
    error = sdk_error(lambda: client.list_image_local(ListImageLocalRequest(limit=10)))
    assert (error.status_code, error.error_code) == (401, "APIG.0301")
    assert "signature does not match" in error.error_msg
    assert SK not in error.error_msg
    assert len(error.request_id) == 32
    assert token_sim.stats.requests == 1  # the SDK does not retry
    sdk_client(token_sim).list_image_local(ListImageLocalRequest())  # resets the count


def test_sdk_temporary_credentials(token_sim: RunningSimulator) -> None:
    credentials = BasicCredentials(TEMP_AK, TEMP_SK, PROJECT).with_security_token(STS)
    client = sdk_client(token_sim, credentials=credentials)
    response = client.list_image_local(ListImageLocalRequest(limit=10))
    assert response.total_num == token_sim.inventory.total(PROJECT)
    no_token = sdk_client(token_sim, credentials=BasicCredentials(TEMP_AK, TEMP_SK, PROJECT))
    error = sdk_error(lambda: no_token.list_image_local(ListImageLocalRequest()))
    assert (error.status_code, error.error_code) == (401, "APIG.0301")
    assert "X-Security-Token is missing" in error.error_msg
    sdk_client(token_sim, credentials=credentials).list_image_local(ListImageLocalRequest())


def test_sdk_is_locked_out_after_five_bad_signatures() -> None:
    config = SimulatorConfig(records=20, access_keys={AK: SK})
    with simulator_in_thread(config) as sim:
        wrong = sdk_client(sim, credentials=BasicCredentials(AK, "WRONG", PROJECT))
        for _ in range(5):
            sdk_error(lambda: wrong.list_image_local(ListImageLocalRequest()))
        error = sdk_error(lambda: sdk_client(sim).list_image_local(ListImageLocalRequest()))
        assert (error.status_code, error.error_code) == (401, "APIG.0301")
        assert "locked" in error.error_msg
