"""``hss-images check``: the real CLI against the simulator (and moto's S3), real sockets.

It takes sync's flags and config file, sends one small page request per project, checks
the output as a run would use it, prints a table, exits 0, 2 or 3, and writes nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from connector.simulator import (
    FaultConfig,
    ProjectFailure,
    RunningSimulator,
    SimulatorConfig,
    simulator_in_thread,
)
from tests.commands import Cli, spawn_cli
from tests.ecosystem.test_s3 import BUCKET, S3_ENV, s3_endpoint  # noqa: F401 (a fixture)

from .helpers import EVERY_EP, TOKEN

P1, P2 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
ENV = {"HSS_AUTH_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def sim() -> Any:
    config = SimulatorConfig(
        seed=8,
        project_records={P1: 430, P2: 75, "p-denied": 20},
        tokens=frozenset({TOKEN}),
        faults=FaultConfig(project_failures={"p-denied": ProjectFailure(status=403)}),
    )
    with simulator_in_thread(config) as running:
        yield running


def _check(cli: Cli, sim: RunningSimulator, *args: str, env: dict[str, str] | None = None) -> Any:
    return cli("check", "--endpoint", sim.base_url, *args, env=env or ENV, timeout=60)


def _tree(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under ``root`` (hidden ones too): kind, size and modification time."""
    found: dict[str, tuple[str, int, int]] = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        kind = "dir" if path.is_dir() else "file"
        found[str(path.relative_to(root))] = (kind, info.st_size, info.st_mtime_ns)
    return found


def _names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by their first column (split on runs of two spaces)."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        cells = [c for c in line.split("  ") if c.strip()]
        if cells:
            rows[cells[0].strip()] = [c.strip() for c in cells[1:]]
    return rows


def _page_requests(sim: RunningSimulator, since: int) -> list[tuple[str, int, int]]:
    return [(e.project_id, e.offset, e.limit) for e in list(sim.stats.log)[since:]]


@pytest.mark.process
def test_check_reads_one_small_page_per_project_and_writes_nothing(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """Settings from a config file (as sync takes them); neither the lake, its state folder
    nor the report exist yet, and none of them (nor anything else) exists afterwards. The
    ``check`` command's smoke test: the real entry point, in a process of its own."""
    config_file = tmp_path / "hss.toml"
    config_file.write_text(
        f'out = "{tmp_path / "lake"}"\nreport = "{tmp_path / "run.json"}"\n'
        f'[[projects]]\nid = "{P1}"\n[[projects]]\nid = "{P2}"\n'
    )
    before, requests_before = _tree(tmp_path), len(sim.stats.log)

    result = _check(spawn_cli, sim, "--config", str(config_file))

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(_page_requests(sim, requests_before)) == sorted([(P1, 0, 10), (P2, 0, 10)])
    assert _names(tmp_path) == set(before) - {"."}
    rows = _rows(result.stdout)
    for project in (P1, P2):
        endpoint, auth, verdict, detail = rows[project]
        visible = sim.inventory.total(project, **EVERY_EP)
        assert (endpoint, auth, verdict) == (sim.base_url, "token", "ok")
        assert detail == f"{visible:,} image(s) visible"
    assert rows["output"][:2] == [str(tmp_path / "lake"), "ok"]
    assert f"a run creates lake, lake.connector in {tmp_path}" in rows["output"][2]
    assert rows["report"] == [str(tmp_path / "run.json"), "ok", "writable"]
    assert "2 of 2 project(s) reachable; output writable; nothing was written; exit code 0" in (
        result.stdout
    )
    assert TOKEN not in result.stdout + result.stderr


def test_check_of_a_lake_in_use_changes_nothing_in_it(
    cli: Cli, sim: RunningSimulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    synced = cli(
        "sync", "--endpoint", sim.base_url, "--project-id", P1, "--out", str(lake), env=ENV
    )
    assert synced.returncode == 0, synced.stderr
    state = tmp_path / "lake.connector"
    before = (_tree(lake), _tree(state))

    result = _check(cli, sim, "--project-id", P1, "--out", str(lake))

    assert result.returncode == 0, result.stdout + result.stderr
    assert (_tree(lake), _tree(state)) == before  # not a file, not a folder's mtime
    verdict, detail = _rows(result.stdout)["output"][1:]
    assert verdict == "ok"
    assert "writable" in detail and "holds this query's inventory" in detail


def test_check_shows_each_projects_api_error_and_exits_3(
    cli: Cli, sim: RunningSimulator, tmp_path: Path
) -> None:
    result = _check(
        cli, sim, "--project-id", P1, "--project-id", "p-denied", "--out", str(tmp_path / "lake")
    )

    assert result.returncode == 3, result.stdout + result.stderr
    rows = _rows(result.stdout)
    assert rows[P1][2] == "ok"
    verdict, detail = rows["p-denied"][2:]
    assert verdict == "FAILED"
    assert detail.startswith("AuthError: ")
    assert "HTTP 403" in detail and "error_code HSS.0013" in detail
    assert "1 of 2 project(s) reachable" in result.stdout
    assert _names(tmp_path) == set()


def test_check_with_a_wrong_token_names_the_apis_error_never_the_token(
    cli: Cli, sim: RunningSimulator, tmp_path: Path
) -> None:
    wrong = "wrong-token-" + "z" * 40
    result = _check(
        cli, sim, "--project-id", P1, "--out", str(tmp_path / "lake"), env={"HSS_AUTH_TOKEN": wrong}
    )

    assert result.returncode == 3
    detail = _rows(result.stdout)[P1][3]
    assert "AuthError" in detail and "HTTP 401" in detail and "error_code APIG.0301" in detail
    assert wrong not in result.stdout + result.stderr


def _other_query_lake(cli: Cli, sim: RunningSimulator, tmp_path: Path) -> str:
    lake = tmp_path / "filtered"
    args = ["--project-id", P2, "--out", str(lake), "--has-vul", "true"]
    synced = cli("sync", "--endpoint", sim.base_url, *args, env=ENV)
    assert synced.returncode == 0, synced.stderr
    return str(lake)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("a file in the way", "is not a folder"),
        ("a lake of another query", "holds the inventory of another query"),
        ("the root of the filesystem", "is the root of its filesystem"),
    ],
)
def test_check_refuses_an_output_the_run_would_refuse_and_exits_2(
    cli: Cli, sim: RunningSimulator, tmp_path: Path, case: str, expected: str
) -> None:
    if case == "a file in the way":
        (tmp_path / "taken").write_text("not a folder")
        out = str(tmp_path / "taken" / "lake")
    elif case == "a lake of another query":
        out = _other_query_lake(cli, sim, tmp_path)
    else:
        out = "/"
    before = _tree(tmp_path)

    result = _check(cli, sim, "--project-id", P2, "--out", out)

    assert result.returncode == 2, result.stdout + result.stderr
    rows = _rows(result.stdout)
    assert rows[P2][2] == "ok"  # the projects are still probed and shown
    assert rows["output"][1] == "FAILED"
    assert expected in rows["output"][2]
    assert "output NOT usable" in result.stdout
    assert {k: v for k, v in _tree(tmp_path).items() if k != "."} == {
        k: v for k, v in before.items() if k != "."
    }


def test_check_with_a_configuration_error_exits_2_before_any_request(
    cli: Cli, sim: RunningSimulator, tmp_path: Path
) -> None:
    before = len(sim.stats.log)

    result = _check(cli, sim, "--project-id", P1)

    assert result.returncode == 2
    assert "ConfigError: flag --out: give an output folder" in result.stderr
    assert len(sim.stats.log) == before


def test_check_help_shares_syncs_flags_and_lists_its_exit_codes(cli: Cli) -> None:
    sync_help = cli("sync", "--help").stdout
    check_help = cli("check", "--help").stdout
    for flag in ("--config", "--out", "--project-id", "--region", "--report", "--log-format"):
        assert flag in sync_help and flag in check_help
    listed = check_help[check_help.index("exit codes:") :]
    for code in ("0", "2", "3"):
        assert f"\n  {code:>3}  " in listed
    assert "and write nothing" in " ".join(check_help.split())


# -- a filesystem that refuses writes (a tmpfs mounted for the test) ------------------------


def _read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


@pytest.mark.parametrize("lake_exists", [True, False], ids=["existing-lake", "new-lake"])
def test_check_on_a_read_only_filesystem_exits_2_as_the_sync_would_fail(
    cli: Cli, sim: RunningSimulator, small_disk: Path, lake_exists: bool
) -> None:
    """An existing lake is asked with access(2) (no probe file inside it); a new one gets a
    probe file in its parent. Either way the check says why, and the sync then fails."""
    if lake_exists:
        (small_disk / "lake").mkdir()
        (small_disk / "lake.connector").mkdir()
    _read_only(small_disk)
    out = str(small_disk / "lake")

    result = _check(cli, sim, "--project-id", P2, "--out", out)
    synced = cli("sync", "--endpoint", sim.base_url, "--project-id", P2, "--out", out, env=ENV)

    assert result.returncode == 2, result.stdout + result.stderr
    detail = _rows(result.stdout)["output"][2]
    if lake_exists:
        assert f"cannot write in {small_disk / 'lake'}: read-only file system" in detail
    else:
        assert (
            f"cannot create {small_disk / 'lake'} in {small_disk}: read-only file system" in detail
        )
    assert synced.returncode != 0


def test_check_on_a_full_filesystem_exits_2(
    cli: Cli, sim: RunningSimulator, small_disk: Path
) -> None:
    (small_disk / "lake").mkdir()
    (small_disk / "lake.connector").mkdir()
    with (small_disk / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass

    result = _check(cli, sim, "--project-id", P2, "--out", str(small_disk / "lake"))

    assert result.returncode == 2, result.stdout + result.stderr
    assert "no space left on the filesystem" in _rows(result.stdout)["output"][2]


# -- object storage --------------------------------------------------------------------------


def _keys(endpoint: str) -> set[str]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _s3_env(endpoint: str) -> dict[str, str]:
    return {**S3_ENV, "AWS_ENDPOINT_URL": endpoint, "HSS_AUTH_TOKEN": TOKEN}


@pytest.mark.s3
def test_check_on_s3_proves_writing_and_leaves_no_object_behind(
    cli: Cli,
    sim: RunningSimulator,
    s3_endpoint: str,  # noqa: F811
) -> None:
    out = f"s3://{BUCKET}/checked/hss_images"
    env = _s3_env(s3_endpoint)
    synced = cli("sync", "--endpoint", sim.base_url, "--project-id", P2, "--out", out, env=env)
    assert synced.returncode == 0, synced.stderr
    before = _keys(s3_endpoint)

    result = _check(cli, sim, "--project-id", P2, "--out", out, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert _keys(s3_endpoint) == before
    verdict, detail = _rows(result.stdout)["output"][1:]
    assert verdict == "ok"
    assert "an empty object put and deleted beside it" in detail
    assert "holds this query's inventory" in detail


@pytest.mark.s3
def test_check_on_a_fresh_s3_prefix_leaves_at_most_its_folder_marker(
    cli: Cli,
    sim: RunningSimulator,
    s3_endpoint: str,  # noqa: F811
) -> None:
    """Before any run, pyarrow's delete leaves the parent's zero-byte folder marker, the one
    the first run creates anyway; nothing under the lake or its state folder."""
    before = _keys(s3_endpoint)

    result = _check(
        cli,
        sim,
        "--project-id",
        P2,
        "--out",
        f"s3://{BUCKET}/fresh/hss_images",
        env=_s3_env(s3_endpoint),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert _keys(s3_endpoint) - before <= {"fresh/"}


@pytest.mark.s3
def test_check_of_a_missing_bucket_exits_2(
    cli: Cli,
    sim: RunningSimulator,
    s3_endpoint: str,  # noqa: F811
) -> None:
    result = _check(
        cli, sim, "--project-id", P2, "--out", "s3://no-such-bucket/x", env=_s3_env(s3_endpoint)
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "the bucket 'no-such-bucket' does not exist" in _rows(result.stdout)["output"][2]


@pytest.mark.slow
def test_check_paces_its_probes_as_a_sync_would(cli: Cli, tmp_path: Path) -> None:
    """Twelve projects against a gateway of 4 requests/s (bucket of 2): sent all at once,
    most would be throttled; paced by --rate 3, as a user sets it below the gateway's
    limit, none is (the margin absorbs loopback jitter between sending and arriving)."""
    projects = [f"p{n:02d}" for n in range(12)]
    config = SimulatorConfig(seed=2, records=15, tokens=frozenset({TOKEN}), rate=4, burst=2)
    with simulator_in_thread(config) as gateway:
        ids = [arg for p in projects for arg in ("--project-id", p)]
        result = _check(cli, gateway, *ids, "--rate", "3", "--out", str(tmp_path / "lake"))
        throttled, requests = gateway.stats.throttled, len(gateway.stats.log)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (throttled, requests) == (0, len(projects))
