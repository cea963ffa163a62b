"""What operators of batch jobs expect from the command: a version, the exit codes in
``--help``, a library call that says what to do inside an event loop, a progress line with
percent and ETA, and structured (JSON) log lines that carry the run and the project."""

from __future__ import annotations

import asyncio
import io
import logging
import math
import re
from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import connector
from connector import Auth, Config, ConnectorError, Secret
from connector.cli import EXIT_CODES, main
from connector.errors import AuthError
from connector.job.logs import PROJECT, JsonFormatter, error_fields, run_context
from connector.job.progress import Counts, Progress, eta_seconds, format_duration, percent
from connector.redaction import RedactingFilter, Redactor


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


# -- the progress line: pure arithmetic, driven clock ---------------------------------------


@given(
    records=st.integers(min_value=0, max_value=10**9),
    total=st.integers(min_value=-5, max_value=10**9),
    rate=st.floats(min_value=0, max_value=1e7, allow_nan=False),
)
def test_percent_and_eta_are_bounded_and_consistent(records: int, total: int, rate: float) -> None:
    share = percent(records, total)
    eta = eta_seconds(records, total, rate)
    if total <= 0:
        assert share is None and eta is None
        return
    assert share is not None and 0.0 <= share <= 100.0
    if records >= total:
        assert share == 100.0 and eta == 0.0
    elif rate == 0:
        assert eta is None
    elif math.isfinite((total - records) / rate):
        assert eta is not None and eta > 0
        assert records + eta * rate == pytest.approx(total)
    else:  # a rate so small the time overflows: no ETA rather than "inf"
        assert eta is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (245, "4m05s"), (3600, "1h00m"), (3725, "1h02m")],
)
def test_durations_read_like_a_clock(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


class _Run:
    """Counters and a clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.counts = Counts(records=0, projects=3)

    def clock(self) -> float:
        return self.now


def test_progress_rate_follows_the_recent_window_and_eta_the_rest() -> None:
    run = _Run()
    progress = Progress(lambda: run.counts, "off", clock=run.clock, window_s=30.0)

    run.now += 10
    run.counts = Counts(records=0, total=0, projects_started=0, projects=3)
    first = progress.sample()
    assert first.percent is None and first.eta_s is None
    assert first.line().startswith("0 records; 0 of 3 projects started;")

    # a slow start: 1,000 records in 20 s, then 50 records/s for the next 40 s
    run.now += 20
    run.counts = Counts(records=1_000, total=10_000, projects_started=2, projects=3)
    progress.sample()
    for _ in range(4):
        run.now += 10
        run.counts = replace(run.counts, records=run.counts.records + 500)
        snapshot = progress.sample()
    assert snapshot.counts.records == 3_000
    assert snapshot.rate == pytest.approx(50.0)  # the slow start aged out of the window
    assert snapshot.percent == pytest.approx(30.0)
    assert snapshot.eta_s == pytest.approx(7_000 / 50)
    assert snapshot.line().startswith(
        "3,000 of ~10,000 records (30.0%), ETA 2m20s; 2 of 3 projects started;"
    )
    assert snapshot.fields()["eta_s"] == 140.0 and snapshot.fields()["percent"] == 30.0


def test_progress_finish_logs_the_final_counts_in_log_mode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = _Run()
    run.counts = Counts(records=60_000, total=60_000, projects_started=3, projects=3, pages=302)
    progress = Progress(lambda: run.counts, "log", clock=run.clock)
    run.now += 12

    with caplog.at_level(logging.INFO, logger="connector"):
        snapshot = progress.finish()

    [record] = caplog.records
    assert snapshot.counts.records == 60_000
    assert record.getMessage().startswith("progress (final): 60,000 of ~60,000 records (100.0%)")
    assert (record.records, record.total, record.final) == (60_000, 60_000, True)  # type: ignore[attr-defined]


# -- structured logs --------------------------------------------------------------------------

SECRET = "s3cr3t-token-" + "x" * 30


def _json_logger(stream: io.StringIO, redactor: Redactor) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(redactor))
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("connector")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def test_json_lines_carry_fields_and_never_a_secret() -> None:
    stream = io.StringIO()
    logger = _json_logger(stream, Redactor([SECRET]))
    error = AuthError(
        "the credentials were rejected",
        project_id="p1",
        offset=400,
        status=401,
        error_code="APIG.0301",
        error_msg=f"token {SECRET} is invalid",
    )

    with run_context("run-7"):
        PROJECT.set("p1")
        logger.error("project %s failed: %s", "p1", error, extra=error_fields(error))
        try:
            raise ValueError(f"boom {SECRET}")
        except ValueError:
            logger.exception("with a traceback")
    PROJECT.set(None)
    logger.info("outside a run")

    text = stream.getvalue()
    assert SECRET not in text
    first, second, third = (orjson.loads(line) for line in text.splitlines())
    assert first["level"] == "ERROR" and first["logger"] == "connector"
    assert (first["run_id"], first["project"]) == ("run-7", "p1")
    assert (first["offset"], first["status"], first["error_code"]) == (400, 401, "APIG.0301")
    assert (first["error_type"], first["exit_code"]) == ("AuthError", 3)
    assert first["error_msg"] == "token *** is invalid"
    assert "***" in first["message"] and "T" in first["time"]
    assert "ValueError: boom ***" in second["traceback"]
    assert (third["run_id"], third["project"]) == (None, None)


def test_concurrent_project_tasks_each_log_their_own_project() -> None:
    stream = io.StringIO()
    logger = _json_logger(stream, Redactor())

    async def project(name: str) -> None:
        PROJECT.set(name)
        for _ in range(3):
            await asyncio.sleep(0)
            logger.info("working on %s", name)

    async def run() -> None:
        with run_context("run-9"):
            async with asyncio.TaskGroup() as group:
                for name in ("a", "b", "c"):
                    group.create_task(project(name))

    asyncio.run(run())

    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 9
    for line in lines:
        assert line["message"] == f"working on {line['project']}"
        assert line["run_id"] == "run-9"


def test_log_format_json_turns_a_configuration_error_into_a_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["sync", "--project-id", "p1", "--log-format", "json"])

    err = capsys.readouterr().err
    [line] = [orjson.loads(text) for text in err.splitlines()]
    assert code == 2
    assert line["level"] == "ERROR" and line["error_type"] == "ConfigError"
    assert line["message"].startswith("ConfigError: ")
    assert line["exit_code"] == 2


def test_no_parser_accepts_an_abbreviation() -> None:
    """``--token`` must never pass for ``--token-file``: every parser and subparser, and the
    simulator's own command, refuse abbreviations."""
    import argparse

    from connector.cli import build_parser
    from connector.simulator.__main__ import main as simulator_main

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in [("hss-images", parser), *commands.choices.items()]:
        assert command.allow_abbrev is False, name
    with pytest.raises(SystemExit) as exited:
        simulator_main(["--recor", "10"])  # --records, abbreviated
    assert exited.value.code == 2


@given(st.lists(st.sampled_from([0, 1, 2, 3, 5, 130]), max_size=8))
def test_the_worst_exit_code_wins_whatever_the_order(codes: list[int]) -> None:
    """One of the failures' own codes, the same in any order, and never below one that
    ranks higher in EXIT_PRECEDENCE: 2 over 5 over 3 over 1."""
    from connector.errors import EXIT_PRECEDENCE, worst_exit_code

    worst = worst_exit_code(codes)
    assert worst == worst_exit_code(list(reversed(codes)))
    failures = set(codes) - {0}
    assert worst == (0 if not failures else next(c for c in EXIT_PRECEDENCE if c in failures))
    assert worst_exit_code([3, 5]) == 5 and worst_exit_code([1, 3]) == 3
    assert worst_exit_code([5, 2]) == 2 and worst_exit_code([7, 1]) == 1
