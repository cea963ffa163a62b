"""The simulated IAM: POST /v3/auth/tokens issues project-scoped tokens the gateway accepts
until they expire (APIG.0307), and domain-scoped ones for IAM only; it refuses wrong
passwords with an IAM-style body. GET /v3/auth/projects lists the account's projects to a
token of any scope or an AK/SK signature with the account's X-Domain-Id (from
GET /v3/auth/domains), in IAM's error shape when it refuses."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from sim_http import Reply, aget, apost, get, get_url, login_body, post, project_path
from yarl import URL

from connector.simulator import (
    IamProject,
    RunningSimulator,
    SimulatorConfig,
    create_app,
    simulator_in_thread,
)
from connector.simulator.app import STATE
from connector.simulator.cli import add_arguments, config_from_args
from connector.simulator.iam import IamError, PasswordLogin, domain_id_of, parse_login
from connector.source.signing import AkSkCredentials, sign_request

DOMAIN, USER, PASSWORD = "acme-corp", "hss-reader", "Corr3ct-Horse-Battery"
OTHER_USER, OTHER_PASSWORD = "second-reader", "An0ther-Pa55word"
P1, P2 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
USERS = {(DOMAIN, USER): PASSWORD, (DOMAIN, OTHER_USER): OTHER_PASSWORD}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_in_thread(SimulatorConfig(records=30, iam_users=USERS)) as running:
        yield running


def login(sim: RunningSimulator, project: str = P1, **fields: str) -> Reply:
    who = {"domain": DOMAIN, "user": USER, "password": PASSWORD, "project_id": project}
    who.update(fields)
    return post(f"{sim.base_url}/v3/auth/tokens", login_body(**who))


def assert_iam_error(reply: Reply, status: int) -> str:
    assert reply.status == status
    body = reply.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == status
    assert "X-Subject-Token" not in reply.headers
    assert PASSWORD not in reply.body.decode()
    return str(body["error"]["message"])


def test_login_issues_a_project_scoped_token(sim: RunningSimulator) -> None:
    before = datetime.now(UTC)
    reply = login(sim)
    assert reply.status == 201
    token = reply.headers["X-Subject-Token"]
    assert len(token) > 100 and len(reply.headers["X-Request-Id"]) == 32
    body = reply.json()["token"]
    assert body["project"]["id"] == P1
    assert body["user"]["name"] == USER and body["user"]["domain"]["name"] == DOMAIN
    assert body["methods"] == ["password"]
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert 86_390 < (expires - before).total_seconds() < 86_410
    assert body["expires_at"].endswith("Z")
    assert PASSWORD not in reply.body.decode() and token not in reply.body.decode()

    assert get(sim.url(P1), headers={"X-Auth-Token": token}).status == 200
    other = get(sim.url(P2), headers={"X-Auth-Token": token})
    assert other.status == 401 and other.json()["error_code"] == "APIG.0307"


def test_each_login_issues_a_new_token(sim: RunningSimulator) -> None:
    sim.stats.reset()
    first, second = login(sim), login(sim, P2)
    assert first.headers["X-Subject-Token"] != second.headers["X-Subject-Token"]
    assert sim.stats.tokens_issued == 2
    assert sim.stats.tokens_by_project == {P1: 1, P2: 1}
    assert sim.stats.requests == 0  # logins are not list requests


@pytest.mark.parametrize(
    "fields",
    [
        {"password": PASSWORD + "x"},
        {"user": "nobody"},
        {"domain": "other-domain"},
        {"password": OTHER_PASSWORD},  # another user's password
    ],
)
def test_wrong_credentials_are_refused_alike(sim: RunningSimulator, fields: dict[str, str]) -> None:
    before = sim.stats.iam_requests, sim.stats.tokens_issued
    message = assert_iam_error(login(sim, **fields), 401)
    assert message == "The username or password is wrong."
    assert (sim.stats.iam_requests, sim.stats.tokens_issued) == (before[0] + 1, before[1])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "the body must be an object"),
        (b'{"auth": {}}', 400, "auth.identity"),
        (b'{"auth": {"identity": {"methods": ["token"]}}}', 401, "Unsupported"),
        (
            orjson.dumps({"auth": {**login_body(DOMAIN, USER, PASSWORD, P1)["auth"], "scope": {}}}),
            400,
            "auth.scope.project",
        ),
        (orjson.dumps(login_body(DOMAIN, "", PASSWORD, P1)), 400, "user.name"),
    ],
)
def test_malformed_requests(sim: RunningSimulator, body: bytes, status: int, words: str) -> None:
    assert words in assert_iam_error(post(f"{sim.base_url}/v3/auth/tokens", body), status)


def test_only_post_is_routed(sim: RunningSimulator) -> None:
    reply = get(f"{sim.base_url}/v3/auth/tokens")
    assert reply.status == 404 and reply.json()["error_code"] == "APIG.0101"


def test_a_token_nobody_issued_is_refused(sim: RunningSimulator) -> None:
    reply = get(sim.url(P1), headers={"X-Auth-Token": "MII" + "A" * 120})
    assert reply.status == 401 and reply.json()["error_code"] == "APIG.0301"


def test_parse_login_masks_the_password() -> None:
    parsed = parse_login(orjson.dumps(login_body(DOMAIN, USER, PASSWORD, P1)))
    assert parsed == PasswordLogin(DOMAIN, USER, PASSWORD, P1)
    assert PASSWORD not in repr(parsed)
    with pytest.raises(IamError) as caught:
        parse_login(b'{"auth": {"identity": {"methods": "password"}}}')
    assert caught.value.status == 400


# -- expiry and throttling, with the simulator's clock in the test's hands ------------------


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def served(config: SimulatorConfig, clock: Clock) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(config, clock=clock)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), app[STATE].stats


async def alogin(session: aiohttp.ClientSession, base: str, project: str, user: str = USER) -> str:
    password = USERS[(DOMAIN, user)]
    body = orjson.dumps(login_body(DOMAIN, user, password, project))
    reply = await apost(session, f"{base}/v3/auth/tokens", body)
    assert reply.status == 201, reply.body
    return reply.headers["X-Subject-Token"]


def test_tokens_expire_after_the_configured_lifetime() -> None:
    clock = Clock(1_800_000_000.0)
    config = SimulatorConfig(records=30, iam_users=USERS, iam_token_ttl_s=60)

    async def main() -> None:
        async with served(config, clock) as (base, stats), aiohttp.ClientSession() as session:
            old = await alogin(session, base, P1)
            clock.now += 30
            new = await alogin(session, base, P1)
            url = base + project_path(P1)
            clock.now += 29.9
            assert (await aget(session, url, headers={"X-Auth-Token": old})).status == 200
            clock.now += 0.1
            expired = await aget(session, url, headers={"X-Auth-Token": old})
            assert expired.status == 401
            assert expired.json() == {
                "error_code": "APIG.0307",
                "error_msg": "The token must be updated.",
                "request_id": expired.headers["X-Request-Id"],
            }
            assert (await aget(session, url, headers={"X-Auth-Token": new})).status == 200
            clock.now += 30
            assert (await aget(session, url, headers={"X-Auth-Token": new})).status == 401
            assert stats.tokens_issued == 2
            assert stats.error_codes == {"APIG.0307": 2}

    asyncio.run(main())


def test_issued_at_and_expires_at_follow_the_clock() -> None:
    clock = Clock(1_800_000_000.5)
    config = SimulatorConfig(iam_users=USERS, iam_token_ttl_s=3600)

    async def main() -> dict[str, Any]:
        async with served(config, clock) as (base, _), aiohttp.ClientSession() as session:
            body = orjson.dumps(login_body(DOMAIN, USER, PASSWORD, P1))
            return dict((await apost(session, f"{base}/v3/auth/tokens", body)).json()["token"])

    token = asyncio.run(main())
    assert token["issued_at"] == "2027-01-15T08:00:00.500000Z"
    assert token["expires_at"] == "2027-01-15T09:00:00.500000Z"


def test_the_iam_user_is_the_rate_limit_identity() -> None:
    """Tokens of one user for two projects share the user's bucket; another user has his own."""
    clock = Clock(1_800_000_000.0)
    config = SimulatorConfig(records=30, iam_users=USERS, rate=1, burst=2)

    async def main() -> list[int]:
        async with served(config, clock) as (base, stats), aiohttp.ClientSession() as session:
            t1, t2 = await alogin(session, base, P1), await alogin(session, base, P2)
            t3 = await alogin(session, base, P2, OTHER_USER)
            statuses = [
                (
                    await aget(session, base + project_path(project), headers={"X-Auth-Token": t})
                ).status
                for project, t in ((P1, t1), (P2, t2), (P1, t1), (P2, t3))
            ]
            assert stats.throttled == 1
            return statuses

    assert asyncio.run(main()) == [200, 200, 429, 200]


def test_the_login_route_is_not_throttled() -> None:
    with simulator_in_thread(SimulatorConfig(iam_users=USERS, rate=1, burst=1)) as sim:
        assert all(login(sim).status == 201 for _ in range(5))
        assert sim.stats.tokens_issued == 5 and sim.stats.throttled == 0


# -- GET /v3/auth/projects (KeystoneListAuthProjects) ---------------------------------------

TOKEN, AK, SK = "listing-token-0123456789", "AKLISTING0123456789", "listing-secret-key-0123456789"
REGION_P, SUB_P, OLD_P, EAST_P = (
    "11111111111111111111111111111111",
    "22222222222222222222222222222222",
    "33333333333333333333333333333333",
    "44444444444444444444444444444444",
)
PROJECTS = (
    IamProject(REGION_P, "cn-north-4"),
    IamProject(SUB_P, "cn-north-4_dev", description="development"),
    IamProject(OLD_P, "cn-north-4_old", enabled=False),
    IamProject(EAST_P, "cn-east-3"),
)
FIELDS = {"id", "name", "domain_id", "parent_id", "enabled", "is_domain", "description", "links"}


@pytest.fixture(scope="module")
def lister() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        records=30,
        iam_users=USERS,
        tokens=frozenset({TOKEN}),
        expired_tokens=frozenset({"expired-listing-token"}),
        access_keys={AK: SK},
        iam_projects=PROJECTS,
    )
    with simulator_in_thread(config) as running:
        yield running


def projects_url(sim: RunningSimulator) -> str:
    return f"{sim.base_url}/v3/auth/projects"


def test_the_project_list_has_the_reference_shape(lister: RunningSimulator) -> None:
    reply = get(projects_url(lister), headers={"X-Auth-Token": TOKEN})
    assert reply.status == 200 and len(reply.headers["X-Request-Id"]) == 32
    body = reply.json()
    assert body["links"] == {"self": projects_url(lister)}
    listed = {p["id"]: p for p in body["projects"]}
    assert list(listed) == [REGION_P, SUB_P, OLD_P, EAST_P]  # disabled ones listed too
    assert all(set(p) == FIELDS for p in listed.values())
    account = listed[REGION_P]["domain_id"]
    assert {p["domain_id"] for p in listed.values()} == {account}
    assert listed[REGION_P]["parent_id"] == account  # a region's project: the account
    assert listed[SUB_P]["parent_id"] == REGION_P  # a sub-project: its region's project
    assert listed[EAST_P]["parent_id"] == account
    assert [p["enabled"] for p in listed.values()] == [True, True, False, True]
    assert listed[SUB_P]["description"] == "development"
    assert listed[OLD_P]["links"] == {"self": f"{lister.base_url}/v3/projects/{OLD_P}"}
    assert not any(p["is_domain"] for p in listed.values())


def get_signed_iam(url: str, credentials: AkSkCredentials, headers: dict[str, str]) -> Reply:
    """A GET signed as the SDK signs IAM calls: no X-Project-Id, maybe X-Domain-Id."""
    parts = urlsplit(url)
    request = sign_request(
        method="GET",
        scheme=parts.scheme,
        host=parts.netloc,
        path=parts.path,
        query=[],
        headers=headers,
        body=None,
        credentials=credentials,
        project_id=None,
        now=datetime.now(UTC),
    )
    return get_url(URL(request.url, encoded=True), request.headers)


def test_an_aksk_signature_lists_the_projects_with_the_account_from_auth_domains(
    lister: RunningSimulator,
) -> None:
    """As the SDK's GlobalCredentials do: the account id from GET /v3/auth/domains (signed
    without it), then X-Domain-Id on the listing."""
    keys = AkSkCredentials(AK, SK)
    domains = get_signed_iam(f"{lister.base_url}/v3/auth/domains", keys, {})
    assert domains.status == 200
    (account,) = domains.json()["domains"]
    assert set(account) == {"id", "name", "enabled", "description", "links"}
    assert domains.json()["links"] == {"self": f"{lister.base_url}/v3/auth/domains"}

    reply = get_signed_iam(projects_url(lister), keys, {"X-Domain-Id": account["id"]})
    assert reply.status == 200
    assert [p["id"] for p in reply.json()["projects"]] == [REGION_P, SUB_P, OLD_P, EAST_P]
    assert {p["domain_id"] for p in reply.json()["projects"]} == {account["id"]}

    for headers, words in (({}, "X-Domain-Id is missing"), ({"X-Domain-Id": "0" * 32}, "not")):
        refused = get_signed_iam(projects_url(lister), keys, headers)
        assert refused.status == 401 and words in refused.json()["error"]["message"]

    wrong = get_signed_iam(projects_url(lister), AkSkCredentials(AK, SK + "x"), {})
    assert wrong.status == 401
    body = wrong.json()
    assert set(body) == {"error"} and body["error"]["code"] == 401
    assert "verify aksk signature fail" in body["error"]["message"]
    assert SK not in wrong.body.decode()


def test_tokens_list_the_account_too(lister: RunningSimulator) -> None:
    reply = get(f"{lister.base_url}/v3/auth/domains", headers={"X-Auth-Token": TOKEN})
    assert reply.status == 200 and len(reply.json()["domains"]) == 1
    refused = get(f"{lister.base_url}/v3/auth/domains", headers={"X-Auth-Token": "nope"})
    assert refused.status == 401 and refused.json()["error"]["code"] == 401


def test_tokens_of_either_scope_list_the_projects(lister: RunningSimulator) -> None:
    before = lister.stats.domain_tokens
    domain_scoped = {"auth": {**login_body(DOMAIN, USER, PASSWORD, P1)["auth"]}}
    domain_scoped["auth"]["scope"] = {"domain": {"name": DOMAIN}}
    issued = post(f"{lister.base_url}/v3/auth/tokens", domain_scoped)
    assert issued.status == 201
    assert issued.json()["token"]["domain"] == {"id": domain_id_of(DOMAIN), "name": DOMAIN}
    assert "project" not in issued.json()["token"]
    assert lister.stats.domain_tokens == before + 1
    token = issued.headers["X-Subject-Token"]

    listed = get(projects_url(lister), headers={"X-Auth-Token": token})
    assert listed.status == 200
    assert {p["domain_id"] for p in listed.json()["projects"]} == {domain_id_of(DOMAIN)}
    # a token for IAM is not one for HSS
    refused = get(lister.url(REGION_P), headers={"X-Auth-Token": token})
    assert refused.status == 401 and refused.json()["error_code"] == "APIG.0307"

    project_token = login(lister, REGION_P).headers["X-Subject-Token"]
    assert get(projects_url(lister), headers={"X-Auth-Token": project_token}).status == 200


def test_a_domain_scope_by_id_works_and_another_account_is_refused(
    lister: RunningSimulator,
) -> None:
    body = login_body(DOMAIN, USER, PASSWORD, P1)
    body["auth"]["scope"] = {"domain": {"id": domain_id_of(DOMAIN)}}
    assert post(f"{lister.base_url}/v3/auth/tokens", body).status == 201
    body["auth"]["scope"] = {"domain": {"name": "someone-else"}}
    assert_iam_error(post(f"{lister.base_url}/v3/auth/tokens", body), 401)
    body["auth"]["scope"] = {"domain": {"name": DOMAIN}, "project": {"id": P1}}
    assert "auth.scope" in assert_iam_error(post(f"{lister.base_url}/v3/auth/tokens", body), 400)


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "x-auth-token not found"),
        ({"X-Auth-Token": "not-a-token"}, "decrypt token fail"),
        ({"X-Auth-Token": "expired-listing-token"}, "The token must be updated."),
    ],
)
def test_refusals_come_in_iams_error_shape(
    lister: RunningSimulator, headers: dict[str, str], words: str
) -> None:
    before = lister.stats.project_listings_refused
    reply = get(projects_url(lister), headers=headers)
    assert reply.status == 401
    assert reply.json() == {
        "error": {"code": 401, "message": reply.json()["error"]["message"], "title": "Unauthorized"}
    }
    assert words in reply.json()["error"]["message"]
    assert reply.headers["X-Request-Id"]
    assert lister.stats.project_listings_refused == before + 1


def test_listings_are_counted_apart_from_list_requests(lister: RunningSimulator) -> None:
    lister.stats.reset()
    for _ in range(3):
        assert get(projects_url(lister), headers={"X-Auth-Token": TOKEN}).status == 200
    assert lister.stats.project_listings == 3
    assert lister.stats.requests == 0 and lister.stats.iam_requests == 0


def test_an_account_without_projects_gets_an_empty_list() -> None:
    with simulator_in_thread(SimulatorConfig(tokens=frozenset({TOKEN}))) as sim:
        reply = get(projects_url(sim), headers={"X-Auth-Token": TOKEN})
    assert reply.status == 200 and reply.json()["projects"] == []


def test_iam_projects_are_validated() -> None:
    with pytest.raises(ValueError, match="twice"):
        SimulatorConfig(iam_projects=(IamProject("a", "cn-north-4"), IamProject("a", "x")))
    with pytest.raises(ValueError, match="name"):
        IamProject("a", "")
    with pytest.raises(TypeError):
        SimulatorConfig(iam_projects=("a",))  # type: ignore[arg-type]


def test_simulate_flags_configure_the_listed_projects() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--iam-project",
            f"cn-north-4={REGION_P}",
            "--iam-project",
            f"cn-north-4_dev={SUB_P}",
            "--iam-disabled-project",
            f"cn-north-4_old={OLD_P}",
        ]
    )
    assert config_from_args(args, {}).iam_projects == (
        IamProject(REGION_P, "cn-north-4"),
        IamProject(SUB_P, "cn-north-4_dev"),
        IamProject(OLD_P, "cn-north-4_old", enabled=False),
    )
    assert config_from_args(parser.parse_args([]), {}).iam_projects == ()
    with pytest.raises(SystemExit):
        parser.parse_args(["--iam-project", "no-id"])
