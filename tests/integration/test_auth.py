"""Every credential kind end to end: the CLI (``main`` in the test's process), the simulator
in a thread, real sockets, real signatures and real IAM tokens. Secrets never reach the
output."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

from connector.simulator import RunningSimulator, SimulatorConfig, simulator_in_thread
from tests.commands import Cli

from .helpers import EVERY_EP, as_api_record, read_rows, served

P1, P2 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
AK, SK = "HPUAINTEGRATIONAK001", "integration-secret-key-0123456789abcdef"
TEMP_AK, TEMP_SK = "HSTAINTEGRATIONTMP01", "temporary-secret-key-9876543210"
STS = "sts-security-token-" + "q" * 80
DOMAIN, USER, PASSWORD = "acme-corp", "hss-reader", "Iam-Pa55word-never-printed"
SECRETS = (SK, TEMP_SK, STS, PASSWORD)


def sim_config(**changes: object) -> SimulatorConfig:
    base: dict[str, object] = {
        "seed": 5,
        "project_records": {P1: 420, P2: 260},
        "access_keys": {AK: SK, TEMP_AK: TEMP_SK},
        "security_tokens": {TEMP_AK: STS},
        "iam_users": {(DOMAIN, USER): PASSWORD},
    }
    return SimulatorConfig(**{**base, **changes})  # type: ignore[arg-type]


def sync_cli(
    cli: Cli,
    sim: RunningSimulator,
    out: Path,
    env: dict[str, str],
    projects: Iterable[str] = (P1,),
    *extra: str,
) -> subprocess.CompletedProcess[str]:
    args = ["sync", "--out", str(out), "--endpoint", sim.base_url, "--progress", "off"]
    for project in projects:
        args += ["--project-id", project]
    return cli(*args, *extra, env=env, timeout=60)


def assert_no_secret(result: subprocess.CompletedProcess[str], *files: Path) -> None:
    text = result.stdout + result.stderr + "".join(f.read_text() for f in files)
    for secret in SECRETS:
        assert secret not in text


def assert_equals_inventory(sim: RunningSimulator, out: Path, projects: Iterable[str]) -> None:
    for project in projects:
        rows = read_rows(out, f"project_id = '{project}'")
        got = sorted((as_api_record(r) for r in rows), key=lambda r: r["image_id"])
        want = sorted(
            (served(r) for r in sim.inventory.records(project, **EVERY_EP)),
            key=lambda r: r["image_id"],
        )
        assert len(got) == len(want) > 0
        assert got == want


def pages(sim: RunningSimulator, project: str, size: int) -> int:
    """Pages of ``size`` in what the project serves (its default enterprise project)."""
    return math.ceil(sim.inventory.total(project, **EVERY_EP) / size)


def iam_env(sim: RunningSimulator, password: str = PASSWORD) -> dict[str, str]:
    return {
        "HSS_IAM_USER": USER,
        "HSS_IAM_PASSWORD": password,
        "HSS_IAM_DOMAIN": DOMAIN,
        "HSS_IAM_ENDPOINT": sim.base_url,
    }


# -- AK/SK ---------------------------------------------------------------------------------


def test_aksk_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(sim_config()) as sim:
        env = {"HSS_ACCESS_KEY": AK, "HSS_SECRET_KEY": SK}
        result = sync_cli(cli, sim, tmp_path / "out", env, (P1, P2), "-v")
        assert result.returncode == 0, result.stderr
        assert sim.stats.project(P1).statuses.keys() == {200}
        assert sim.stats.project(P2).statuses.keys() == {200}
        assert_equals_inventory(sim, tmp_path / "out", (P1, P2))
    assert_no_secret(result)


def test_temporary_aksk_with_a_security_token(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(sim_config()) as sim:
        env = {"HSS_ACCESS_KEY": TEMP_AK, "HSS_SECRET_KEY": TEMP_SK, "HSS_SECURITY_TOKEN": STS}
        result = sync_cli(cli, sim, tmp_path / "out", env, (P1,), "-v")
        assert result.returncode == 0, result.stderr
        assert sim.stats.project(P1).statuses.keys() == {200}
        assert_equals_inventory(sim, tmp_path / "out", (P1,))
    assert_no_secret(result)


@pytest.mark.parametrize("kind", ["csv", "toml"])
def test_credentials_file(cli: Cli, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"credentials.{kind}"
    if kind == "csv":  # as the console downloads it
        path.write_text(f"User Name,Access Key Id,Secret Access Key\nhss-reader,{AK},{SK}\n")
    else:  # temporary credentials, as an STS call hands them out
        path.write_text(
            f'access_key = "{TEMP_AK}"\nsecret_key = "{TEMP_SK}"\nsecurity_token = "{STS}"\n'
        )
    with simulator_in_thread(sim_config()) as sim:
        result = sync_cli(cli, sim, tmp_path / "out", {}, (P1,), "--credentials-file", str(path))
        assert result.returncode == 0, result.stderr
        assert_equals_inventory(sim, tmp_path / "out", (P1,))
    assert_no_secret(result)


def test_a_wrong_secret_key_fails_fast_with_one_request(cli: Cli, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with simulator_in_thread(sim_config()) as sim:
        env = {"HSS_ACCESS_KEY": AK, "HSS_SECRET_KEY": "wrong-" + SK}
        result = sync_cli(cli, sim, tmp_path / "out", env, (P1,), "-v", "--report", str(report))
        assert result.returncode == 3, result.stderr
        assert sim.stats.requests == 1  # not retried: five failures would lock the key
        [entry] = sim.stats.log
        assert (entry.status, entry.error_code) == (401, "APIG.0301")
        # one failure does not lock the key: the right secret still works
        ok = sync_cli(cli, sim, tmp_path / "ok", {"HSS_ACCESS_KEY": AK, "HSS_SECRET_KEY": SK})
        assert ok.returncode == 0, ok.stderr
    for words in ("AuthError", "HTTP 401", "APIG.0301", f"request id {entry.request_id}"):
        assert words in result.stderr
    assert "signature does not match" in result.stderr
    assert "wrong-" + SK not in result.stdout + result.stderr + report.read_text()
    assert_no_secret(result, report)
    assert not list((tmp_path / "out").rglob("*.parquet"))


@pytest.mark.slow
def test_two_projects_on_one_access_key_share_one_rate_limit(cli: Cli, tmp_path: Path) -> None:
    """The simulator throttles per AK; the connector must pace both projects together.

    Measured: pacing them together draws 0 throttles; pacing each on its own (twice the
    rate on the wire) draws about 6 before the connector's adaptive rate catches up."""
    rate = 12
    records = {P1: 250, P2: 250}  # about 2 x 22 pages of 10: near 4 s at 12/s
    with simulator_in_thread(sim_config(project_records=records, rate=rate, burst=2)) as sim:
        env = {"HSS_ACCESS_KEY": AK, "HSS_SECRET_KEY": SK}
        extra = ("--rate", str(rate), "--page-size", "10", "--concurrency", "8")
        result = sync_cli(cli, sim, tmp_path / "out", env, (P1, P2), *extra)
        assert result.returncode == 0, result.stderr
        assert sim.stats.requests >= pages(sim, P1, 10) + pages(sim, P2, 10) >= 40
        assert sim.stats.throttled <= 2, sim.stats.error_codes
        assert_equals_inventory(sim, tmp_path / "out", (P1, P2))


# -- IAM password identity -----------------------------------------------------------------


def test_iam_password_identity_gets_one_token_per_project(cli: Cli, tmp_path: Path) -> None:
    with simulator_in_thread(sim_config()) as sim:
        extra = ("--page-size", "50", "-v")
        result = sync_cli(cli, sim, tmp_path / "out", iam_env(sim), (P1, P2), *extra)
        assert result.returncode == 0, result.stderr
        assert sim.stats.tokens_by_project == {P1: 1, P2: 1}
        assert sim.stats.project(P1).requests >= pages(sim, P1, 50) > 1
        assert sim.stats.project(P2).requests >= pages(sim, P2, 50) > 1
        assert sim.stats.error_codes == {}
        assert_equals_inventory(sim, tmp_path / "out", (P1, P2))
    assert_no_secret(result)


@pytest.mark.slow
def test_short_lived_iam_tokens_are_renewed_on_apig_0307(cli: Cli, tmp_path: Path) -> None:
    """Tokens live 1 s and each request takes 0.3 s to reach the gateway, so some arrive
    with a token that has just expired: the connector renews it and re-sends the page."""
    config = sim_config(project_records={P1: 300}, iam_token_ttl_s=1.0, latency_ms=300)
    with simulator_in_thread(config) as sim:
        extra = ("--rate", "10", "--page-size", "10")  # 30 pages: about 3 s
        result = sync_cli(cli, sim, tmp_path / "out", iam_env(sim), (P1,), *extra)
        assert result.returncode == 0, result.stderr
        assert_equals_inventory(sim, tmp_path / "out", (P1,))
        stats = sim.stats.project(P1)
        renewals = stats.error_codes["APIG.0307"]
        assert renewals >= 1, stats
        assert stats.statuses == {200: stats.requests - renewals, 401: renewals}
        # renewed when needed, and reused until shortly before it expires: not one per page
        assert 2 <= sim.stats.tokens_issued < stats.requests // 2
    assert_no_secret(result)


def test_a_wrong_iam_password_fails_clearly(cli: Cli, tmp_path: Path) -> None:
    wrong = "Wrong-" + PASSWORD
    with simulator_in_thread(sim_config()) as sim:
        result = sync_cli(cli, sim, tmp_path / "out", iam_env(sim, wrong), (P1,), "-v")
        assert result.returncode == 3, result.stderr
        assert sim.stats.requests == 0 and sim.stats.tokens_issued == 0
        assert sim.stats.iam_requests == 1
    for words in (
        "AuthError",
        f"IAM refused a token for user '{USER}' in domain '{DOMAIN}'",
        "HTTP 401",
        "The username or password is wrong.",
        "request id ",
    ):
        assert words in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert_no_secret(result)
