"""connector.airflow is optional: a clear ImportError without Airflow, never imported by default."""

from __future__ import annotations

import importlib
import importlib.machinery
import subprocess
import sys
import types

import pytest

import connector

HINT = "pip install 'hss-image-connector[airflow]'"


@pytest.fixture
def fresh_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next ``import connector.airflow`` run the module again."""
    for name in [m for m in sys.modules if m.startswith("connector.airflow")]:
        if name not in ("connector.airflow.provider", "connector.airflow.lineage"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(connector, "airflow", None, raising=False)


@pytest.mark.usefixtures("fresh_import")
def test_without_airflow_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "airflow", None)  # "import airflow" fails
    monkeypatch.setitem(sys.modules, "airflow.sdk", None)

    with pytest.raises(ImportError) as caught:
        _ = importlib.import_module("connector.airflow").HssImageSyncOperator

    assert HINT in str(caught.value)
    assert "not installed" in str(caught.value)


@pytest.mark.usefixtures("fresh_import")
def test_an_airflow_without_the_sdk_is_named_as_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    old = types.ModuleType("airflow")
    old.__spec__ = importlib.machinery.ModuleSpec("airflow", None)
    monkeypatch.setitem(sys.modules, "airflow", old)  # like Airflow 2: no airflow.sdk
    monkeypatch.setitem(sys.modules, "airflow.sdk", None)

    with pytest.raises(ImportError) as caught:
        _ = importlib.import_module("connector.airflow").HssImageSyncOperator

    assert "Airflow 3" in str(caught.value)
    assert "airflow.sdk" in str(caught.value)
    assert HINT in str(caught.value)


def test_the_package_cli_and_simulator_never_import_airflow() -> None:
    probe = (
        "import sys, connector, connector.cli, connector.simulator; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow' "
        "or m == 'connector.airflow'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
