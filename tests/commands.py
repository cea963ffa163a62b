"""``hss-images ARGS`` from a test: in this process (``cli``), or as a process of its own
(``spawn_cli``, for what only a process shows: signals, a crash, the installed script).

Both answer with a ``subprocess.CompletedProcess``: the exit code, stdout and stderr.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import pytest

from connector.cli import main
from connector.source.proxies import proxy_for

__all__ = ["Cli", "InProcessCli", "spawn_cli"]


class Cli(Protocol):
    """How a test runs ``hss-images ARGS``: ``InProcessCli`` or ``spawn_cli``."""

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]: ...


class InProcessCli:
    """``connector.cli.main(ARGS)`` as a child process would run it, without the second of
    start-up: the environment of ``spawn_cli`` (the test's, no ``HSS_*`` variables, plus
    ``env``), stdout and stderr captured, ``SystemExit`` (``--help``, argparse's errors)
    turned into its exit code. What a run changes in this process is put back after each
    call: the ``connector`` logger's handlers, the signal handlers and mask, the proxy
    resolved from the environment. ``timeout`` is how long the call may take, as the child's
    was: a call that takes longer fails the test once it returns."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        with self._monkeypatch.context() as patch:
            for name in [name for name in os.environ if name.startswith("HSS_")]:
                patch.delenv(name)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            self._capsys.readouterr()  # what the test printed before is not the command's
            started = time.monotonic()
            with _process_state_restored():
                code = _exit_code(list(args))
            elapsed = time.monotonic() - started
            captured = self._capsys.readouterr()
        result = subprocess.CompletedProcess(
            ["hss-images", *args], code, captured.out, captured.err
        )
        if elapsed > timeout:
            pytest.fail(
                f"hss-images {' '.join(args[:1])} took {elapsed:.1f} s, more than its "
                f"{timeout} s; stderr:\n{captured.err[-3000:]}"
            )
        return result


def _exit_code(args: list[str]) -> int:
    """``main``'s exit code, or the one its ``SystemExit`` would leave the process with."""
    try:
        return main(args)
    except SystemExit as exited:
        if exited.code is None or isinstance(exited.code, int):
            return exited.code or 0
        print(exited.code, file=sys.stderr)
        return 1


@contextmanager
def _process_state_restored() -> Iterator[None]:
    logger = logging.getLogger("connector")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    stopping = (signal.SIGINT, signal.SIGTERM)
    signal_handlers = {number: signal.getsignal(number) for number in stopping}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    proxy_for.cache_clear()  # resolved from this call's environment
    try:
        yield
    finally:
        proxy_for.cache_clear()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for number, handler in signal_handlers.items():
            signal.signal(number, handler)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def spawn_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HSS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
