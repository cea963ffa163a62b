"""Airflow 3's authoring API (``airflow.sdk``), or an ImportError that says how to install it.

The hook and the operator import Airflow through here only, so that a missing or too old
Airflow is named once, with the fix, and ``connector.airflow.provider`` stays free of it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

_INSTALL_HINT = "pip install 'hss-image-connector[airflow]'"


def _missing_airflow_message() -> str:
    """Why ``airflow.sdk`` cannot be imported: Airflow missing, or one without the SDK."""
    try:
        installed = importlib.util.find_spec("airflow") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return f"connector.airflow needs Apache Airflow 3, which is not installed: {_INSTALL_HINT}"
    try:
        version = f" (found apache-airflow {importlib.metadata.version('apache-airflow')})"
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return (
        "connector.airflow needs Apache Airflow 3, whose authoring API is airflow.sdk; the "
        f"installed Airflow does not provide it{version}: {_INSTALL_HINT}"
    )


try:
    from airflow.sdk import Asset, BaseHook, BaseOperator
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )
except ImportError as _error:
    raise ImportError(_missing_airflow_message()) from _error


def mask(secret: str) -> None:
    """Register a secret with Airflow's log masker (best effort)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - an Airflow without the task-SDK masker
        return
    mask_secret(secret)


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "mask",
]
