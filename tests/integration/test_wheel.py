"""The package works installed from a built wheel, not only from the source checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import connector

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.process  # the installed package's command, in a process of its own
def test_built_wheel_ships_the_schema_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _build("wheel", dist)
    (wheel,) = dist.glob(f"hss_image_connector-{connector.__version__}-*.whl")  # one version
    names = zipfile.ZipFile(wheel).namelist()
    assert "connector/schemas/image_local_info.json" in names
    assert "connector/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    probe = (
        "import connector, connector.shape.schema as s; "
        f"assert connector.__file__.startswith({str(target)!r}), connector.__file__; "
        "print(len(s.dataset_schema()), s.load_spec().name)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["26", "ImageLocalInfo"]
    cli = subprocess.run(
        [sys.executable, "-m", "connector.cli", "sync", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0 and "--project-id" in cli.stdout


def test_built_sdist_ships_the_examples(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _build("sdist", dist)
    sdist = next(dist.glob("hss_image_connector-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert "examples/hss_images_dag.py" in names
    assert {"connector/airflow/provider.py", "schemas/image_local_info.json", "README.md"} <= names


def _build(kind: str, dist: Path) -> None:
    """``python -m build --wheel`` or ``--sdist`` of this checkout into ``dist``."""
    subprocess.run(
        [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "--outdir", str(dist), ROOT],
        check=True,
        capture_output=True,
        text=True,
    )
