"""Running the simulator: async and threaded servers, latency, stats, 404, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from blockbuster import blockbuster_ctx
from sim_http import aget, get, get_many, get_signed, login_body, post

import connector
from connector.simulator import (
    DriftConfig,
    FaultConfig,
    SimulatorConfig,
    create_app,
    running_simulator,
    simulator_in_thread,
)
from connector.simulator.cli import ENVIRONMENT, add_arguments, config_from_args, run
from connector.source.signing import AkSkCredentials


def test_running_simulator_in_the_current_loop() -> None:
    async def main() -> str:
        async with running_simulator(SimulatorConfig(records=25)) as sim:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.base_url)
            assert sim.port > 0 and sim.base_url.endswith(f":{sim.port}")
            async with aiohttp.ClientSession() as session:
                tasks = [aget(session, sim.url(f"p{n % 3}"), {"offset": n}) for n in range(20)]
                replies = await asyncio.gather(*tasks)
            assert {r.status for r in replies} == {200}
            assert sim.stats.requests == 20
            assert sum(sim.stats.project(f"p{n}").requests for n in range(3)) == 20
            return sim.url("p0")

    url = asyncio.run(main())
    with pytest.raises(aiohttp.ClientConnectionError):
        get(url)  # stopped


def test_no_blocking_calls_in_the_event_loop() -> None:
    """Integration tests run the simulator in their own loop under blockbuster."""
    config = SimulatorConfig(
        records=300,
        tokens=frozenset({"t"}),
        rate=1000,
        latency_ms=1,
        jitter_ms=1,
        faults=FaultConfig(
            http_500_rate=0.1,
            reset_rate=0.1,
            truncate_rate=0.1,
            invalid_json_rate=0.1,
            slow_rate=0.1,
            slow_seconds=0.01,
            fraction_rate=0.5,
        ),
        drift=DriftConfig(every_n_requests=2, inserts=2, deletes=1),
    )

    async def main() -> int:
        async with running_simulator(config) as sim, aiohttp.ClientSession() as session:
            for n in range(30):
                params = {"offset": n * 10, "container_name": "web", "has_vul": "true"}
                with contextlib.suppress(aiohttp.ClientError):
                    await aget(session, sim.url("p"), params, {"X-Auth-Token": "t"})
            return sim.stats.requests

    with blockbuster_ctx():
        # aiohttp retries a GET once when a reused connection drops, hence ">=".
        assert asyncio.run(main()) >= 30


def test_threaded_simulator_stops_cleanly() -> None:
    with simulator_in_thread(SimulatorConfig(records=5)) as sim:
        assert get(sim.url("p")).status == 200
        url = sim.url("p")
    with pytest.raises(aiohttp.ClientConnectionError):
        get(url)


def test_create_app_is_a_plain_aiohttp_application() -> None:
    app = create_app(SimulatorConfig(records=3))
    routes = [
        (r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None
    ]
    assert routes == [
        ("GET", "/v5/{project_id}/image/local-repositories"),
        ("POST", "/v3/auth/tokens"),
        ("GET", "/v3/auth/projects"),
        ("GET", "/v3/auth/domains"),
    ]


def test_latency_and_jitter_apply_to_every_response() -> None:
    config = SimulatorConfig(records=5, latency_ms=150, jitter_ms=50, tokens=frozenset({"t"}))
    with simulator_in_thread(config) as sim:
        for headers, status in (({"X-Auth-Token": "t"}, 200), ({}, 401)):
            started = time.monotonic()
            assert get(sim.url("p"), headers=headers).status == status
            assert time.monotonic() - started >= 0.1  # the latency was applied


def test_unknown_route_is_a_gateway_404() -> None:
    with simulator_in_thread(SimulatorConfig(records=5)) as sim:
        reply = get(f"{sim.base_url}/v5/p/image/local-repository")
        assert reply.status == 404
        body = reply.json()
        assert body["error_code"] == "APIG.0101"
        assert body["request_id"] == reply.headers["X-Request-Id"]
        assert sim.stats.requests == 0


def test_stats_and_log() -> None:
    with simulator_in_thread(SimulatorConfig(records=40, rate_per_minute=3)) as sim:
        params = [
            {"offset": 0, "limit": 10},
            {"offset": 10, "limit": 10},
            {"limit": 5},
            {"offset": "x"},
        ]
        get_many(sim.url("a"), params)
        # Throttling is per credential (the token, even with auth off), not per project.
        get(sim.url("b"), {"offset": 30, "limit": 20}, headers={"X-Auth-Token": "other"})
        log = [(e.project_id, e.offset, e.limit, e.status) for e in sim.stats.log]
        assert log == [
            ("a", 0, 10, 200),
            ("a", 10, 10, 200),
            ("a", None, 5, 400),
            ("a", None, None, 429),
            ("b", 30, 20, 200),
        ]
        assert sim.stats.requests == 5 and sim.stats.throttled == 1
        assert sim.stats.project("a").statuses == {200: 2, 400: 1, 429: 1}
        assert sim.stats.project("never").requests == 0
        assert all(len(e.request_id) == 32 for e in sim.stats.log)
        sim.stats.reset()
        assert sim.stats.requests == 0 and not sim.stats.log


# -- CLI -----------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_defaults() -> None:
    args = parse()
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    config = config_from_args(args, {})
    assert config == SimulatorConfig()
    assert not config.auth_enabled


def test_cli_flags_map_to_config() -> None:
    args = parse(
        *shlex.split(
            "--records 50 --project-records big=5000 --token a --token b --expired-token old"
            " --seed 7 --rate 50 --burst 10 --rate-per-minute 600 --retry-after 3"
            " --latency-ms 20 --jitter-ms 5 --max-offset 1000 --fault-500-rate 0.1"
            " --fault-reset-rate 0.05 --fault-slow-seconds 2 --fault-burst 2 --fault-project x"
            " --fail-project bad:3:403:HSS.0013 --fail-project gone --data-fraction-rate 0.01"
            " --drift-every 5 --drift-inserts 2 --drift-deletes 1 --drift-max-events 9"
        )
    )
    config = config_from_args(args, {"HSS_SIM_TOKEN": "env-token"})
    assert config.records == 50 and dict(config.project_records) == {"big": 5000}
    assert config.tokens == {"a", "b", "env-token"} and config.expired_tokens == {"old"}
    assert (config.seed, config.rate, config.burst, config.rate_per_minute) == (7, 50, 10, 600)
    assert (config.retry_after, config.latency_ms, config.jitter_ms) == (3, 20, 5)
    assert config.max_offset == 1000
    faults = config.faults
    assert (faults.http_500_rate, faults.reset_rate, faults.burst) == (0.1, 0.05, 2)
    assert faults.slow_seconds == 2 and faults.projects == {"x"}
    assert faults.fraction_rate == 0.01
    bad, gone = faults.project_failures["bad"], faults.project_failures["gone"]
    assert (bad.count, bad.status, bad.error_code) == (3, 403, "HSS.0013")
    assert (gone.count, gone.status) == (None, 400)
    drift = config.drift
    assert (drift.every_n_requests, drift.inserts, drift.deletes, drift.max_events) == (5, 2, 1, 9)


def test_cli_credentials_map_to_config() -> None:
    args = parse(
        *shlex.split(
            "--access-key AK1 --secret-key SK1 --access-key AK2 --secret-key SK2"
            " --security-token AK2=STS2 --lockout-failures 3 --lockout-seconds 60"
            " --iam-token-ttl 1.5"
        )
    )
    environ = {
        "HSS_SIM_ACCESS_KEY": "AK3",
        "HSS_SIM_SECRET_KEY": "SK3",
        "HSS_SIM_SECURITY_TOKEN": "STS3",
        "HSS_SIM_IAM_USER": "reader",
        "HSS_SIM_IAM_PASSWORD": "pw",
        "HSS_SIM_IAM_DOMAIN": "acme",
    }
    config = config_from_args(args, environ)
    assert dict(config.access_keys) == {"AK1": "SK1", "AK2": "SK2", "AK3": "SK3"}
    assert dict(config.security_tokens) == {"AK2": "STS2", "AK3": "STS3"}
    assert (config.lockout_failures, config.lockout_s) == (3, 60)
    assert dict(config.iam_users) == {("acme", "reader"): "pw"}
    assert config.iam_token_ttl_s == 1.5
    assert config.auth_enabled and config.auth_methods == ("AK/SK", "IAM")
    defaults = config_from_args(parse(), {})
    assert (defaults.lockout_failures, defaults.lockout_s, defaults.iam_token_ttl_s) == (
        5,
        300,
        86400,
    )
    assert set(ENVIRONMENT) == {
        "HSS_SIM_TOKEN",
        "HSS_SIM_ACCESS_KEY",
        "HSS_SIM_SECRET_KEY",
        "HSS_SIM_SECURITY_TOKEN",
        "HSS_SIM_IAM_USER",
        "HSS_SIM_IAM_PASSWORD",
        "HSS_SIM_IAM_DOMAIN",
    }


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        ("--access-key AK1", {}),
        ("--access-key AK1 --secret-key S1 --secret-key TOPSECRET", {}),
        ("--access-key AK1 --secret-key S1 --access-key AK1 --secret-key TOPSECRET", {}),
        ("", {"HSS_SIM_ACCESS_KEY": "AK"}),
        ("", {"HSS_SIM_SECRET_KEY": "TOPSECRET"}),
        ("", {"HSS_SIM_SECURITY_TOKEN": "TOPSECRET"}),
        ("--security-token NOSUCHAK=TOPSECRET", {}),
        ("", {"HSS_SIM_IAM_USER": "u", "HSS_SIM_IAM_PASSWORD": "TOPSECRET"}),
        ("--iam-token-ttl 0", {}),
        ("--lockout-failures -1", {}),
    ],
)
def test_cli_rejects_incomplete_credentials(argv: str, environ: dict[str, str]) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        config_from_args(parse(*shlex.split(argv)), environ)
    assert "TOPSECRET" not in str(caught.value)


def test_cli_security_token_needs_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--security-token", "TOPSECRET")
    assert "TOPSECRET" not in capsys.readouterr().err


def test_every_cli_flag_is_documented() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(flags) > 30
    assert all(a.help for a in flags), [a.dest for a in flags if not a.help]


def _serves_until_sigterm(command: list[str], token: str, env: dict[str, str]) -> str:
    """Start ``command``, read the URL it prints, check ``token`` is accepted and no token
    refused, stop it with SIGTERM (exit 0); what it wrote to stderr."""
    root = Path(connector.__file__).parent.parent
    env = {**env, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            base_url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url), base_url
            url = f"{base_url}/v5/p/image/local-repositories"
            assert get(url, headers={"X-Auth-Token": token}).status == 200
            assert get(url).status == 401
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            return proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.process
def test_cli_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "connector.simulator", "--port", "0", "--records", "30"]
    _serves_until_sigterm(command, "env-token", {**os.environ, "HSS_SIM_TOKEN": "env-token"})


@pytest.mark.process
def test_hss_images_simulate_serves_until_sigterm() -> None:
    """The ``simulate`` command's smoke test: ``hss-images simulate``, the real entry point,
    in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSS_")}
    command = [sys.executable, "-m", "connector.cli", "simulate", "--port", "0"]
    command += ["--records", "30", "--token", "flag-token"]
    assert "flag-token" not in _serves_until_sigterm(command, "flag-token", env)


@pytest.mark.process
def test_cli_serves_aksk_and_iam_from_the_environment() -> None:
    root = Path(connector.__file__).parent.parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HSS_")},
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "HSS_SIM_ACCESS_KEY": "ENVAK",
        "HSS_SIM_SECRET_KEY": "ENVSK",
        "HSS_SIM_IAM_USER": "reader",
        "HSS_SIM_IAM_PASSWORD": "pw-from-env",
        "HSS_SIM_IAM_DOMAIN": "acme",
    }
    command = [sys.executable, "-m", "connector.simulator", "--port", "0", "--records", "30"]
    command += ["--access-key", "FLAGAK", "--secret-key", "FLAGSK", "--iam-token-ttl", "600"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            base_url = proc.stdout.readline().strip()
            url = f"{base_url}/v5/p/image/local-repositories"
            assert get_signed(url, AkSkCredentials("ENVAK", "ENVSK")).status == 200
            assert get_signed(url, AkSkCredentials("FLAGAK", "FLAGSK")).status == 200
            assert get_signed(url, AkSkCredentials("FLAGAK", "ENVSK")).status == 401
            reply = post(
                f"{base_url}/v3/auth/tokens", login_body("acme", "reader", "pw-from-env", "p")
            )
            assert reply.status == 201
            token = reply.headers["X-Subject-Token"]
            assert get(url, headers={"X-Auth-Token": token}).status == 200
            assert get(url).status == 401
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            err = proc.stderr.read()
            assert "auth by AK/SK, IAM" in err
            assert "ENVSK" not in err and "FLAGSK" not in err and "pw-from-env" not in err
        finally:
            if proc.poll() is None:
                proc.kill()


def test_cli_rejects_invalid_values() -> None:
    assert run(parse("--fault-500-rate", "2")) == 2
    assert run(parse("--access-key", "AK")) == 2
