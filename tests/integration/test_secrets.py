"""No secret reaches a log line, an error, the report, the progress output or a file."""

from __future__ import annotations

from pathlib import Path

from connector import Auth, Config, Secret
from connector.simulator import FaultConfig, ProjectFailure, SimulatorConfig, simulator_in_thread

from .helpers import TOKEN, cli

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
FAILING = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def _everything_written(out: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())


def test_token_never_appears_in_any_output(tmp_path: Path) -> None:
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


def test_reprs_mask_credentials() -> None:
    config = Config(
        projects=(PROJECT,),
        endpoint="https://hss.cn-north-4.myhuaweicloud.com",
        out="x",
        auth=Auth(token=Secret("s3cr3t-value")),
    )
    assert "s3cr3t-value" not in repr(config) + str(config)


def test_plain_http_to_a_remote_host_needs_an_explicit_opt_in(tmp_path: Path) -> None:
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
