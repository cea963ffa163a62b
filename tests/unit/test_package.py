"""The package's public names: each from its module, imported only when first used."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import connector

HEAVY = ("pyarrow", "aiohttp", "msgspec", "connector.job.pipeline")


def test_every_public_name_is_the_object_of_its_module() -> None:
    assert sorted(connector._MODULE_OF) == sorted(connector.__all__)
    for name in connector.__all__:
        module = importlib.import_module(f"connector.{connector._MODULE_OF[name]}")
        assert getattr(connector, name) is getattr(module, name), name
    assert set(connector.__all__) <= set(dir(connector))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'connector' has no attribute 'Sync'"):
        _ = connector.Sync  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="cannot import name 'Sync'"):
        from connector import Sync  # type: ignore[attr-defined]  # noqa: F401


def test_airflow_reads_the_provider_info_without_the_heavy_imports() -> None:
    """Airflow imports ``connector.airflow.provider`` in its scheduler, webserver and CLI."""
    probe = (
        "import sys; from connector.airflow.provider import get_provider_info; "
        "info = get_provider_info(); "
        f"print(info['package-name'], sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split(maxsplit=1) == ["hss-image-connector", "[]\n"]


def test_the_documented_use_still_imports_what_it_needs() -> None:
    probe = (
        "import sys; from connector import Config, run; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == str(sorted(HEAVY))
