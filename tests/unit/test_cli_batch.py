"""What operators of batch jobs expect from the command: a version, the exit codes in
``--help``, and a library call that says what to do inside an event loop."""

from __future__ import annotations

import asyncio
import re

import pytest

import connector
from connector import Auth, Config, ConnectorError, Secret
from connector.cli import EXIT_CODES, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"hss-images {connector.__version__}"


def test_sync_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sync", "--help"])

    help_text = capsys.readouterr().out
    listed = help_text[help_text.index("exit codes:") :]
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^ +{code}  {re.escape(meaning)}$", listed, re.MULTILINE), code


def test_run_inside_a_running_event_loop_names_run_async(tmp_path: object) -> None:
    """A notebook cell runs in an event loop: asyncio.run's RuntimeError would not say what
    to do, and nothing must be requested or written."""
    config = Config(
        projects=("p1",),
        endpoint="https://hss.example.test",
        out=str(tmp_path),
        auth=Auth(token=Secret("tok-" + "ab" * 20)),
    )

    async def in_a_notebook_cell() -> None:
        connector.run(config)

    with pytest.raises(ConnectorError, match=r"await connector\.run_async\(config\)"):
        asyncio.run(in_a_notebook_cell())
