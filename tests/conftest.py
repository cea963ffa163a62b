"""Shared fixtures: hermetic environment, no secrets or state leaking between tests; ``cli``,
the command line in this process. The tiers and markers are in tests/README.md."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.commands import InProcessCli

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


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcessCli:
    """``cli(*args, env=...)``: ``hss-images ARGS`` in this process (tests/commands.py)."""
    return InProcessCli(capsys, monkeypatch)
