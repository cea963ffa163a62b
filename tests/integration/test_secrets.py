"""No secret reaches a log line, an error, the report, the progress output or a file."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from connector import Auth, Config, FetchSettings, RetryPolicy, RunReport, Secret
from connector.cli import main
from connector.job.pipeline import run_async
from connector.simulator import (
    FaultConfig,
    ProjectFailure,
    SimulatorConfig,
    create_app,
    simulator_in_thread,
)
from tests.commands import Cli

from .helpers import TOKEN
from .tiny_server import Request, error, records, tiny_server

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
FAILING = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def _everything_written(out: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())


def test_token_never_appears_in_any_output(cli: Cli, tmp_path: Path) -> None:
    faults = FaultConfig(
        http_500_rate=0.1,
        fraction_rate=0.05,
        project_failures={FAILING: ProjectFailure(status=403, error_code="HSS.0013")},
    )
    sim_config = SimulatorConfig(
        seed=41, records=600, tokens=frozenset({TOKEN}), rate=20, faults=faults
    )
    report = tmp_path / "report.json"
    with simulator_in_thread(sim_config) as sim:
        ok = cli(
            "sync",
            "-v",
            "--project-id",
            PROJECT,
            "--project-id",
            FAILING,
            "--out",
            str(tmp_path / "out"),
            "--endpoint",
            sim.base_url,
            "--rate",
            "100",
            "--progress",
            "log",
            "--report",
            str(report),
            "--max-quarantined",
            "50%",
            env={"HSS_AUTH_TOKEN": TOKEN},
        )
        token_file = tmp_path / "token"
        token_file.write_text("a-wrong-token-that-is-secret\n")
        bad = cli(
            "sync",
            "-v",
            "--project-id",
            PROJECT,
            "--out",
            str(tmp_path / "bad"),
            "--endpoint",
            sim.base_url,
            "--token-file",
            str(token_file),
        )
    assert ok.returncode == 4, ok.stderr  # partial: one project may not be read
    assert bad.returncode == 3, bad.stderr
    captured = (
        ok.stdout + ok.stderr + bad.stdout + bad.stderr + _everything_written(tmp_path / "out")
    )
    captured += report.read_text()
    assert TOKEN not in captured
    assert "a-wrong-token-that-is-secret" not in bad.stdout + bad.stderr


def _echo_the_token(status: int, code: str) -> object:
    """A server that quotes the credential it was sent back in its error_msg."""

    async def answer(request: Request) -> object:
        sent = request.http.headers.get("X-Auth-Token", "")
        return error(status, code, f"Incorrect IAM authentication information: token {sent}")

    return answer


def _sync_verbosely(
    cli: Cli, endpoint: str, tmp_path: Path, *extra: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``sync -v`` of PROJECT into ``tmp_path/out``, its report at ``tmp_path/report.json``."""
    return cli(
        "sync",
        "-v",
        "--project-id",
        PROJECT,
        "--out",
        str(tmp_path / "out"),
        "--endpoint",
        endpoint,
        "--report",
        str(tmp_path / "report.json"),
        *extra,
        env=env,
    )


def test_a_secret_echoed_by_the_server_is_redacted_everywhere(cli: Cli, tmp_path: Path) -> None:
    """The server's error_msg quotes the token: the log, the summary and the report show ***."""
    report = tmp_path / "report.json"
    with tiny_server({PROJECT: records("p", 20)}, _echo_the_token(401, "APIG.0301")) as server:
        result = _sync_verbosely(cli, server.base_url, tmp_path, env={"HSS_AUTH_TOKEN": TOKEN})
    assert result.returncode == 3, result.stderr
    summary = result.stderr.split("\nrun ", 1)[1]  # after the log lines: the summary
    assert "token ***" in summary and "token ***" in report.read_text()
    assert "token ***" in result.stderr.split("\nrun ", 1)[0]  # the log line
    assert TOKEN not in result.stdout + result.stderr + report.read_text()


def test_a_token_obtained_from_iam_is_redacted_when_the_server_echoes_it(
    cli: Cli, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    password = "iam-Passw0rd-not-for-logs"
    with tiny_server({PROJECT: records("p", 20)}, _echo_the_token(403, "HSS.0010")) as server:
        result = _sync_verbosely(
            cli,
            server.base_url,
            tmp_path,
            "--iam-endpoint",
            server.base_url,
            env={"HSS_IAM_USER": "robot", "HSS_IAM_PASSWORD": password, "HSS_IAM_DOMAIN": "acme"},
        )
        [issued] = server.iam_tokens
    assert result.returncode == 3, result.stderr
    everything = result.stdout + result.stderr + report.read_text()
    assert issued not in everything and password not in everything
    assert "token ***" in report.read_text() and "token ***" in result.stderr


def test_reprs_mask_credentials() -> None:
    config = Config(
        projects=(PROJECT,),
        endpoint="https://hss.cn-north-4.myhuaweicloud.com",
        out="x",
        auth=Auth(token=Secret("s3cr3t-value")),
    )
    assert "s3cr3t-value" not in repr(config) + str(config)


def test_plain_http_to_a_remote_host_needs_an_explicit_opt_in(cli: Cli, tmp_path: Path) -> None:
    refused = cli(
        "sync",
        "--project-id",
        PROJECT,
        "--out",
        str(tmp_path),
        "--endpoint",
        "http://192.0.2.10",
        env={"HSS_AUTH_TOKEN": TOKEN},
    )
    assert refused.returncode == 2 and "--allow-insecure-http" in refused.stderr


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    context = _self_signed(tmp_path)
    app = create_app(SimulatorConfig(records=50, tokens=frozenset({TOKEN})))

    async def scenario() -> RunReport:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        try:
            config = Config(
                projects=(PROJECT,),
                endpoint=f"https://127.0.0.1:{port}",
                out=str(tmp_path / "out"),
                auth=Auth(token=Secret(TOKEN)),
                progress="off",
                fetch=FetchSettings(retry=RetryPolicy(max_attempts=1)),
            )
            return await run_async(config)
        finally:
            await runner.cleanup()

    report = asyncio.run(scenario())
    assert report.status == "failed" and report.exit_code == 3
    assert report.projects[PROJECT].error_type == "TransportError"
    assert "certificate" in (report.projects[PROJECT].error or "").lower()


# ------------------------------------- credentials that cannot be sent, options that are not


def _main(
    sim_url: str,
    tmp_path: Path,
    *extra: str,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, dict[str, object]]:
    """The real CLI in-process: ``sync`` of PROJECT with a report; exit code, everything
    printed, and the report (which must have been written)."""
    report = tmp_path / "report.json"
    code = main(
        [
            "sync",
            "--project-id",
            PROJECT,
            "--out",
            str(tmp_path / "out"),
            "--endpoint",
            sim_url,
            "--report",
            str(report),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert report.exists(), "a run that stops before it starts still leaves its report"
    return code, captured.out + captured.err, orjson.loads(report.read_bytes())


def test_an_abbreviated_option_is_unknown_and_its_value_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--token s3cr3t`` once passed for ``--token-file`` and printed the secret as a path."""
    monkeypatch.setenv("HSS_AUTH_TOKEN", TOKEN)
    with simulator_in_thread(SimulatorConfig(records=30, tokens=frozenset({TOKEN}))) as sim:
        for spelled in (["--token", "s3cr3t-value"], ["--token=s3cr3t-value"]):
            code, printed, report = _main(sim.base_url, tmp_path, *spelled, capsys=capsys)
            assert code == 2, printed
            assert "ConfigError: command line: unknown option --token" in printed
            assert "s3cr3t-value" not in printed + orjson.dumps(report).decode()
            assert (report["status"], report["exit_code"]) == ("failed", 2)
        assert sim.stats.requests == 0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"s3cr3t\nvalue\n", "control character"),
        (b"s3cr3t\x00value", "control character"),
        (b"s3cr3t\tvalue", "control character"),
        (b"s3cr3t\xffvalue", "not UTF-8"),
    ],
    ids=["newline", "NUL", "tab", "latin-1"],
)
@pytest.mark.parametrize("option", ["--token-file", "--credentials-file"])
def test_a_credential_that_cannot_be_sent_is_a_configuration_error_before_any_request(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    why: str,
    option: str,
) -> None:
    secrets_file = tmp_path / "secret"
    if option == "--credentials-file":  # the secret key of a TOML credentials file
        content = b'access_key = "AK"\nsecret_key = "' + content.replace(b"\n", b"\\n") + b'"\n'
        content = content.replace(b"\x00", b"\\u0000").replace(b"\t", b"\\t")
    secrets_file.write_bytes(content)
    with simulator_in_thread(SimulatorConfig(records=30, tokens=frozenset({TOKEN}))) as sim:
        code, printed, report = _main(
            sim.base_url, tmp_path, option, str(secrets_file), capsys=capsys
        )
        assert sim.stats.requests == 0
    assert code == 2, printed
    assert f"ConfigError: flag {option} {secrets_file}" in printed and why in printed
    assert (report["status"], report["exit_code"]) == ("failed", 2)
    assert report["error_type"] == "ConfigError" and f"flag {option}" in str(report["error"])
    assert "s3cr3t" not in printed + orjson.dumps(report).decode()


@pytest.mark.parametrize(
    "variables",
    [
        {"HSS_AUTH_TOKEN": "s3cr3t\nvalue"},
        {"HSS_ACCESS_KEY": "AK", "HSS_SECRET_KEY": "s3cr3t\rvalue"},
        {"HSS_ACCESS_KEY": "AK", "HSS_SECRET_KEY": "SK", "HSS_SECURITY_TOKEN": "s3cr3t\x7fvalue"},
    ],
    ids=["token", "secret key", "security token"],
)
def test_a_variable_with_a_control_character_is_named_never_shown(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with simulator_in_thread(SimulatorConfig(records=30, tokens=frozenset({TOKEN}))) as sim:
        code, printed, report = _main(sim.base_url, tmp_path, capsys=capsys)
        assert sim.stats.requests == 0
    assert code == 2, printed
    named = next(n for n, v in variables.items() if "s3cr3t" in v)
    assert f"ConfigError: environment {named}: the credential holds a control character" in printed
    assert (report["status"], report["error_type"]) == ("failed", "ConfigError")
    assert "s3cr3t" not in printed + orjson.dumps(report).decode()
