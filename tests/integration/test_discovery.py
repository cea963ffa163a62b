"""Project discovery (``Config(all_projects=True)``) against the simulator, over real sockets.

IAM's ``GET /v3/auth/projects`` lists the account's projects in every region; a run reads
the enabled ones of the endpoint's region (the region's project and its sub-projects), as
if their ids had been given, with a token, an AK/SK signature or an IAM password identity.
No project to read, or a credential IAM refuses, stops the run before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connector import Auth, AuthError, Config, ConfigError, Secret
from connector.errors import DiscoveryError, MalformedResponseError, ServerError
from connector.job.report import ProjectReport, RunReport
from connector.settings.config import IamPassword
from connector.simulator import IamProject, RunningSimulator, SimulatorConfig, simulator_in_thread
from connector.source.discovery import discover_projects
from connector.source.signing import AkSkCredentials
from connector.source.transport import open_transport
from tests.commands import Cli

from .helpers import EVERY_EP, FAST_RETRY, TOKEN, config, read_rows, sync

AK, SK = "AKDISCOVERY000000001", "discovery-secret-key-0123456789abcdef"
TEMP_AK, TEMP_SK, STS = (
    "AKTEMPORARY00000001",
    "temporary-secret-key-0123456789",
    "sts-token-0123456789",
)
DOMAIN, USER, PASSWORD = "acme-corp", "hss-reader", "Disc0very-Pa55word"
REGION = "cn-north-4"
P_REGION = "a0000000000000000000000000000001"
P_DEV = "a0000000000000000000000000000002"
P_OLD = "a0000000000000000000000000000003"
P_EAST = "a0000000000000000000000000000004"
P_SOUTH_DEV = "a0000000000000000000000000000005"
PROJECTS = (
    IamProject(P_EAST, "cn-east-3"),
    IamProject(P_REGION, REGION),
    IamProject(P_OLD, f"{REGION}_old", enabled=False),
    IamProject(P_DEV, f"{REGION}_dev"),
    IamProject(P_SOUTH_DEV, "cn-north-40_dev"),  # a name that only starts like the region
)
READ = (P_REGION, P_DEV)
NOT_READ = (P_OLD, P_EAST, P_SOUTH_DEV)
SECRETS = (TOKEN, SK, PASSWORD, TEMP_SK, STS)


def simulator_config(projects: tuple[IamProject, ...] = PROJECTS) -> SimulatorConfig:
    return SimulatorConfig(
        records=40,
        project_records={P_REGION: 230, P_DEV: 75, P_OLD: 50, P_EAST: 60, P_SOUTH_DEV: 20},
        tokens=frozenset({TOKEN}),
        access_keys={AK: SK, TEMP_AK: TEMP_SK},
        security_tokens={TEMP_AK: STS},
        iam_users={(DOMAIN, USER): PASSWORD},
        iam_projects=projects,
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_in_thread(simulator_config()) as running:
        yield running


def discovering(sim: RunningSimulator, out: Path, **kw: Any) -> Config:
    """A config that lists its projects: the simulator's endpoint names no region, so the
    region and the IAM endpoint (the simulator's own) are given."""
    return config(
        sim.base_url,
        out,
        projects=(),
        all_projects=True,
        region=kw.pop("region", REGION),
        iam_endpoint=kw.pop("iam_endpoint", sim.base_url),
        **kw,
    )


def assert_read_every_discovered_project(sim: RunningSimulator, out: Path) -> None:
    rows = read_rows(out)
    by_project = {p: sorted(r["image_id"] for r in rows if r["project_id"] == p) for p in READ}
    for project in READ:
        truth = sorted(r["image_id"] for r in sim.inventory.records(project, **EVERY_EP))
        assert by_project[project] == truth and len(truth) > 0
    assert {r["project_id"] for r in rows} == set(READ)
    for project in NOT_READ:
        assert sim.stats.project(project).requests == 0


def test_a_token_discovers_and_reads_every_project_of_the_region(
    sim: RunningSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim.stats.reset()
    report_path = tmp_path / "report.json"
    with caplog.at_level(logging.INFO, logger="connector"):
        report = sync(discovering(sim, tmp_path / "lake", report_path=str(report_path)))
    assert report.status == "success" and report.exit_code == 0
    assert list(report.projects) == list(READ)  # IAM's order
    assert report.records_written == sum(sim.inventory.total(p, **EVERY_EP) for p in READ)
    assert_read_every_discovered_project(sim, tmp_path / "lake")
    assert sim.stats.project_listings == 1

    saved = orjson.loads(report_path.read_bytes())
    assert saved["projects_discovered"] is True
    discovery = saved["discovery"]
    assert discovery["region"] == REGION and discovery["iam_endpoint"] == sim.base_url
    assert discovery["projects"] == [
        {"id": P_REGION, "name": REGION},
        {"id": P_DEV, "name": f"{REGION}_dev"},
    ]
    assert {(s["id"], s["reason"]) for s in discovery["skipped"]} == {
        (P_OLD, "disabled"),
        (P_EAST, "another region"),
        (P_SOUTH_DEV, "another region"),
    }
    assert len(discovery["request_id"]) == 32
    assert "2 read, 1 disabled skipped, 2 of other regions" in report.summary()

    log = caplog.text
    assert "discovered 2 project(s) of region cn-north-4" in log
    assert f"project {P_OLD} (cn-north-4_old) skipped: IAM lists it as disabled" in log
    assert "2 project(s) of other regions not read" in log and "cn-east-3" in log
    assert TOKEN not in log and TOKEN not in report_path.read_text()


@pytest.mark.parametrize(
    "keys", [AkSkCredentials(AK, SK), AkSkCredentials(TEMP_AK, TEMP_SK, STS)], ids=str
)
def test_an_access_key_pair_discovers_with_a_signed_request(
    sim: RunningSimulator, tmp_path: Path, keys: AkSkCredentials
) -> None:
    """The simulator refuses a signed listing without the account's X-Domain-Id: the run
    learnt it from GET /v3/auth/domains first."""
    sim.stats.reset()
    report = sync(discovering(sim, tmp_path, auth=Auth(aksk=keys)))
    assert report.status == "success" and report.projects_discovered
    assert_read_every_discovered_project(sim, tmp_path)
    assert (sim.stats.project_listings, sim.stats.project_listings_refused) == (1, 0)
    text = report.to_json().decode()
    assert all(secret not in text for secret in SECRETS)


def test_an_iam_password_identity_discovers_with_a_domain_scoped_token(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    sim.stats.reset()
    identity = IamPassword(USER, Secret(PASSWORD), DOMAIN, iam_endpoint=sim.base_url)
    report = sync(discovering(sim, tmp_path, auth=Auth(iam=identity), iam_endpoint=None))
    assert report.status == "success"
    assert_read_every_discovered_project(sim, tmp_path)
    # one token for IAM (the account), then one per project read, as without discovery
    assert sim.stats.domain_tokens == 1
    assert dict(sim.stats.tokens_by_project) == {P_REGION: 1, P_DEV: 1}
    assert sim.stats.project_listings == 1
    assert PASSWORD not in report.to_json().decode()


def test_a_region_without_a_project_to_read_is_a_loud_error(tmp_path: Path) -> None:
    """Only a disabled project and others' regions: the run fails, nothing is written."""
    projects = tuple(p for p in PROJECTS if p.id not in READ)
    out, report_path = tmp_path / "lake", tmp_path / "report.json"
    with simulator_in_thread(simulator_config(projects)) as sim:
        with pytest.raises(DiscoveryError) as caught:
            sync(discovering(sim, out, report_path=str(report_path)))
        assert sim.stats.requests == 0 and sim.stats.project_listings == 1
    error = caught.value
    assert error.exit_code == 3 and not error.retryable and error.permanent
    assert "no enabled project of region cn-north-4" in str(error)
    assert "1 disabled in cn-north-4, 2 of other regions" in str(error)
    assert error.request_id and error.request_id in str(error)
    assert not out.exists() or not any(out.rglob("*.parquet"))
    saved = orjson.loads(report_path.read_bytes())
    assert (saved["status"], saved["exit_code"], saved["error_type"]) == (
        "failed",
        3,
        "DiscoveryError",
    )
    assert saved["projects_discovered"] is True and saved["projects"] == {}


def test_an_account_with_no_project_at_all_is_a_loud_error(tmp_path: Path) -> None:
    with simulator_in_thread(simulator_config(())) as sim:
        with pytest.raises(DiscoveryError, match=r"0 listed"):
            sync(discovering(sim, tmp_path))
        assert sim.stats.requests == 0


@pytest.mark.parametrize("kind", ["token", "aksk", "iam"])
def test_a_credential_iam_refuses_is_an_auth_error_without_the_secret(
    sim: RunningSimulator, tmp_path: Path, kind: str
) -> None:
    wrong = "wrong-" + {"token": TOKEN, "aksk": SK, "iam": PASSWORD}[kind]
    auth = {
        "token": Auth(token=Secret(wrong)),
        "aksk": Auth(aksk=AkSkCredentials(AK, wrong)),
        "iam": Auth(iam=IamPassword(USER, Secret(wrong), DOMAIN, iam_endpoint=sim.base_url)),
    }[kind]
    sim.stats.reset()
    report_path = tmp_path / "report.json"
    with pytest.raises(AuthError) as caught:
        sync(discovering(sim, tmp_path / "lake", auth=auth, report_path=str(report_path)))
    error = caught.value
    assert error.status == 401 and error.error_code == "401" and error.request_id
    assert error.exit_code == 3
    text = str(error) + repr(error.args) + report_path.read_text()
    assert wrong not in text and all(secret not in text for secret in SECRETS)
    assert f"request id {error.request_id}" in str(error)
    assert sim.stats.requests == 0  # not one HSS request
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.parquet"))


def test_the_region_follows_a_public_cloud_endpoint_and_must_be_said_otherwise(
    tmp_path: Path,
) -> None:
    base = dict(projects=(), out=str(tmp_path), auth=Auth(token=Secret(TOKEN)), all_projects=True)
    public = Config(endpoint="https://hss.cn-east-3.myhuaweicloud.com", **base)  # type: ignore[arg-type]
    assert public.targets == () and public.project_ids == ()
    with pytest.raises(
        ConfigError, match=re.escape("cannot tell the region of http://127.0.0.1:9")
    ):
        Config(endpoint="http://127.0.0.1:9", **base)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="IAM endpoint that lists the projects"):
        Config(endpoint="http://127.0.0.1:9", region=REGION, **base)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="in region cn-east-3, not cn-north-4"):
        replace(public, region=REGION)
    with pytest.raises(ConfigError, match="not both"):
        replace(public, projects=(P_REGION,))
    with pytest.raises(ConfigError, match="give endpoint or region"):
        replace(public, endpoint=None)
    with pytest.raises(ConfigError, match="region name"):
        Config(endpoint="http://127.0.0.1:9", region="cn_north", **base)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="give at least one project id"):
        replace(public, all_projects=False)


def serve_iam(body: bytes, status: int = 200) -> web.Application:
    async def projects(_: web.Request) -> web.Response:
        return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/v3/auth/projects", projects)
    return app


async def discover_from(app: web.Application, out: Path) -> Any:
    async with TestServer(app, host="127.0.0.1") as server:
        base = str(server.make_url("")).rstrip("/")
        cfg = config(base, out, projects=(), all_projects=True, region=REGION, iam_endpoint=base)
        async with open_transport(cfg.fetch) as transport:
            return await discover_projects(cfg, transport, sleep=_no_sleep)


async def _no_sleep(_: float) -> None:
    return None


def listing(**extra: Any) -> bytes:
    project = {"id": P_REGION, "name": REGION, "enabled": True, "domain_id": "d", "links": {}}
    return orjson.dumps({"projects": [project], "links": {"self": "x"}, **extra})


def test_a_paged_answer_is_refused_rather_than_read_in_part(tmp_path: Path) -> None:
    """The list is documented unpaged; a ``links.next`` would mean projects left out."""
    found = asyncio.run(discover_from(serve_iam(listing()), tmp_path))
    assert found.project_ids == (P_REGION,)
    paged = listing(links={"self": "x", "next": "https://iam.example/v3/auth/projects?page=2"})
    with pytest.raises(DiscoveryError, match=r"links\.next"):
        asyncio.run(discover_from(serve_iam(paged), tmp_path))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>busy</html>", "not JSON"),
        (b'{"links": {}}', "no 'projects' list"),
        (b'{"projects": [{"id": "x", "name": "cn-north-4"}]}', "boolean 'enabled'"),
        (b'{"projects": [{"id": "../x", "name": "cn-north-4", "enabled": true}]}', "not a project"),
    ],
)
def test_an_answer_that_is_not_the_documented_list_is_refused(
    tmp_path: Path, body: bytes, words: str
) -> None:
    with pytest.raises(MalformedResponseError, match=words):
        asyncio.run(discover_from(serve_iam(body), tmp_path))


def test_a_failing_iam_is_retried_then_reported(tmp_path: Path) -> None:
    calls = 0

    async def flaky(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            return web.Response(status=503, text="busy", headers={"X-Request-Id": f"r{calls}"})
        return web.Response(body=listing(), headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/v3/auth/projects", flaky)
    assert asyncio.run(discover_from(app, tmp_path)).project_ids == (P_REGION,)
    assert calls == 3

    always = serve_iam(b'{"error": {"code": 500, "message": "down"}}', status=500)
    with pytest.raises(ServerError) as caught:
        asyncio.run(discover_from(always, tmp_path))
    assert caught.value.attempts == FAST_RETRY.max_attempts
    assert caught.value.error_msg == "down"


def test_a_discovering_session_is_closed_after_use(sim: RunningSimulator, tmp_path: Path) -> None:
    """The listing shares the run's session: one session, closed when the run ends."""
    opened: list[aiohttp.ClientSession] = []
    original = aiohttp.ClientSession.__init__

    def spy(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        opened.append(self)
        original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiohttp.ClientSession, "__init__", spy)
        report = sync(discovering(sim, tmp_path))
    assert report.status == "success"
    assert len(opened) == 1 and opened[0].closed


def test_every_report_field_is_documented() -> None:
    """The manual's "The run report" names every key of the report, the new ones included."""
    output = (Path(__file__).parents[2] / "docs" / "output.md").read_text(encoding="utf-8")
    section = output[output.index("## The run report\n") : output.index("## Progress and logs\n")]
    report = RunReport(run_id="r", snapshot_date="2026-12-01", endpoint="e", started_at="s")
    keys = set(report.to_dict()) | set(asdict(ProjectReport("p"))) - {"project_id"}
    assert {"projects_discovered", "discovery"} <= keys
    assert sorted(k for k in keys if f"`{k}`" not in section) == []


def test_the_domain_token_comes_from_the_iam_that_lists_the_projects(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """``Config.iam_endpoint`` wins over the identity's own for discovery, token included."""
    identity = IamPassword(USER, Secret(PASSWORD), DOMAIN, iam_endpoint="http://127.0.0.1:9")
    cfg = discovering(sim, tmp_path, auth=Auth(iam=identity))

    async def main() -> tuple[str, ...]:
        async with open_transport(cfg.fetch) as transport:
            return (await discover_projects(cfg, transport)).project_ids

    sim.stats.reset()
    assert asyncio.run(main()) == READ
    assert sim.stats.domain_tokens == 1


def test_an_iam_identity_asks_for_one_token_however_often_the_listing_is_retried(
    tmp_path: Path,
) -> None:
    logins = listings = 0

    async def token(_: web.Request) -> web.Response:
        nonlocal logins
        logins += 1
        return web.Response(status=201, headers={"X-Subject-Token": f"MII-account-{logins}"})

    async def flaky(request: web.Request) -> web.Response:
        nonlocal listings
        listings += 1
        assert request.headers["X-Auth-Token"] == "MII-account-1"
        if listings < 3:
            return web.Response(status=502, text="bad gateway")
        return web.Response(body=listing(), headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_post("/v3/auth/tokens", token)
    app.router.add_get("/v3/auth/projects", flaky)

    async def main() -> tuple[str, ...]:
        async with TestServer(app, host="127.0.0.1") as server:
            base = str(server.make_url("")).rstrip("/")
            identity = IamPassword(USER, Secret(PASSWORD), DOMAIN, iam_endpoint=base)
            cfg = config(
                base,
                tmp_path,
                projects=(),
                all_projects=True,
                region=REGION,
                auth=Auth(iam=identity),
            )
            async with open_transport(cfg.fetch) as transport:
                return (await discover_projects(cfg, transport, sleep=_no_sleep)).project_ids

    assert asyncio.run(main()) == (P_REGION,)
    assert (logins, listings) == (1, 3)


@pytest.mark.parametrize("domains", [b'{"domains": []}', b"{}", b"not json"])
def test_an_access_key_without_an_account_is_refused(tmp_path: Path, domains: bytes) -> None:
    """No account id, no X-Domain-Id: the listing is not attempted."""
    listings = 0

    async def accounts(_: web.Request) -> web.Response:
        return web.Response(body=domains, headers={"Content-Type": "application/json"})

    async def projects(_: web.Request) -> web.Response:
        nonlocal listings
        listings += 1
        return web.Response(body=listing(), headers={"Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/v3/auth/domains", accounts)
    app.router.add_get("/v3/auth/projects", projects)

    async def main() -> None:
        async with TestServer(app, host="127.0.0.1") as server:
            base = str(server.make_url("")).rstrip("/")
            cfg = config(
                base,
                tmp_path,
                projects=(),
                all_projects=True,
                region=REGION,
                iam_endpoint=base,
                auth=Auth(aksk=AkSkCredentials(AK, SK)),
            )
            async with open_transport(cfg.fetch) as transport:
                await discover_projects(cfg, transport, sleep=_no_sleep)

    with pytest.raises(MalformedResponseError, match="X-Domain-Id"):
        asyncio.run(main())
    assert listings == 0


def _discovering_cli(cli: Cli, sim: RunningSimulator, command: str, *args: str) -> Any:
    return cli(
        command,
        "--endpoint",
        sim.base_url,
        "--all-projects",
        "--discovery-region",
        REGION,
        "--iam-endpoint",
        sim.base_url,
        *args,
        env={"HSS_AUTH_TOKEN": TOKEN},
    )


def test_the_cli_syncs_every_discovered_project(
    cli: Cli, sim: RunningSimulator, tmp_path: Path
) -> None:
    sim.stats.reset()
    out = tmp_path / "lake"
    done = _discovering_cli(cli, sim, "sync", "--out", str(out), "--progress", "off")
    assert done.returncode == 0, done.stderr
    assert_read_every_discovered_project(sim, out)
    assert TOKEN not in done.stderr


def test_check_probes_the_first_pages_of_the_discovered_projects(
    cli: Cli, sim: RunningSimulator, tmp_path: Path
) -> None:
    sim.stats.reset()
    done = _discovering_cli(cli, sim, "check", "--out", str(tmp_path / "lake"))
    assert done.returncode == 0, done.stdout + done.stderr
    for project in READ:
        assert project in done.stdout and sim.stats.project(project).requests == 1
    for project in NOT_READ:
        assert sim.stats.project(project).requests == 0
    assert not (tmp_path / "lake").exists()


def test_check_reports_a_failed_listing_as_an_api_error(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(simulator_config(projects=(IamProject(P_EAST, "cn-east-3"),))) as sim:
        done = _discovering_cli(cli, sim, "check", "--out", str(tmp_path / "lake"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "(all projects)" in done.stdout and "DiscoveryError" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
