"""Shared fixtures: hermetic environment, no secrets or state leaking between tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

CREDENTIAL_ENV = (
    "HSS_AUTH_TOKEN",
    "HSS_ACCESS_KEY",
    "HSS_SECRET_KEY",
    "HSS_SECURITY_TOKEN",
    "HSS_ENDPOINT",
    "HSS_REGION",
)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    logger = logging.getLogger("connector")
    logger.handlers.clear()
    logger.propagate = True
