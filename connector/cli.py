"""``hss-images``: a thin shell over ``connector.run``.

    hss-images sync       (--project-id P | --all-projects) --out DIR (--endpoint URL | --region R)
                          [filters]
    hss-images check      the same flags: reach every project once, check the output; write nothing
    hss-images diff       LAKE [--from DATE] [--to DATE] [--project-id P ...] [--output FILE]
                          [--catalog NAME] [--table IDENT]:
                          what changed between two snapshots of each project
    hss-images simulate   serve the embedded HSS simulator
    hss-images demo       simulator + two days synced + a summary and what changed

Exit codes: 0 success; 1 unexpected error or output failure; 2 configuration error;
3 API or authentication error; 4 partial failure (some projects published, some not);
5 data check failed (too many quarantined records, or a completeness check); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from connector import __version__
from connector.errors import ConfigError, ConnectorError
from connector.job.logs import LOG_FORMATS, JsonFormatter, LogFormat, error_fields
from connector.job.report import RunReport, write_report
from connector.redaction import RedactingFilter, Redactor
from connector.settings.config import (
    Config,
    FetchSettings,
    Filters,
    QuarantineLimit,
    ReadDate,
    RetryPolicy,
    new_run_id,
)
from connector.settings.file import load_config_file
from connector.settings.keys import KEYS, Setting, build_config
from connector.settings.names import naming, render

__all__ = ["EXIT_CODES", "build_parser", "config_from_args", "flag", "main"]

log = logging.getLogger("connector")

EXIT_CODES = {
    0: "success: every project was published (or, with --skip-published, already was)",
    1: "unexpected error, or writing the output failed",
    2: "configuration error (flags, environment, config file); nothing was requested",
    3: "API or authentication error; nothing was published",
    4: "partial failure: some projects were published, others failed (see the report)",
    5: "data check failed: too many quarantined records or a completeness check; "
    "the project was not published",
    130: "interrupted (SIGINT/SIGTERM); nothing half-written is left visible",
}

CHECK_EXIT_CODES = {
    0: "every project answered and the output can be written",
    1: "unexpected error",
    2: "configuration error (flags, environment, config file), or the output or the "
    "report's folder cannot be used",
    3: "API or authentication error for at least one project",
    130: "interrupted (SIGINT/SIGTERM)",
}

ENVIRONMENT = {
    "HSS_AUTH_TOKEN": "IAM token sent as X-Auth-Token (or use --token-file).",
    "HSS_ACCESS_KEY": "Access key for AK/SK request signing (with HSS_SECRET_KEY).",
    "HSS_SECRET_KEY": "Secret key for AK/SK request signing.",
    "HSS_SECURITY_TOKEN": "Security token of temporary AK/SK credentials.",
    "HSS_IAM_USER": "IAM user name: obtain project-scoped tokens from IAM (with the two below).",
    "HSS_IAM_PASSWORD": "IAM user's password.",
    "HSS_IAM_DOMAIN": "IAM user's account (domain) name.",
    "HSS_IAM_ENDPOINT": "IAM endpoint (default: derived from the HSS endpoint's region).",
    "HSS_ENDPOINT": "Default for --endpoint.",
    "HSS_REGION": "Default for --region.",
    "AWS_ENDPOINT_URL": "Endpoint of an S3-compatible store for s3:// output (or --s3-endpoint).",
    "AWS_ACCESS_KEY_ID": "S3 credentials (with AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION).",
}


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


_FETCH = FetchSettings()
_RETRY = RetryPolicy()

# key (dest, config-file key and connection extra), metavar, default, help
TUNING: list[tuple[str, str, Any, str]] = [
    ("page_size", "N", _FETCH.page_size, "Records per request, 10..200."),
    (
        "rate",
        "R",
        _FETCH.rate,
        "Requests per second per endpoint and credential, shared by its projects; 0 = no limit. Lowered automatically when throttled, then recovered.",
    ),
    (
        "burst",
        "B",
        _FETCH.burst,
        "The rate limiter's bucket in requests, >= 1: at most rate x t + B requests in any t seconds. Above 1 a request makes up for one the event loop sent late (up to B - 1 intervals), and up to B leave back to back (halved after a 429 they caused).",
    ),
    (
        "concurrency",
        "N",
        _FETCH.concurrency,
        "Requests in flight at once per endpoint and credential, over all its projects (a request takes its rate token first, then its slot). A run this cap held below --rate says so at its end.",
    ),
    (
        "parallel_projects",
        "N|auto",
        "auto (as many as --memory-limit holds)",
        "At most N projects read at the same time, however many fit in --memory-limit.",
    ),
    (
        "memory_limit",
        "SIZE",
        "a quarter of the memory available to the process (its cgroup limit, else MemAvailable)",
        "Memory the projects that read at once may hold, by their estimates (512MiB, 2GiB, 1.5GB or bytes); a project bigger than this reads alone.",
    ),
    (
        "max_attempts",
        "N",
        _RETRY.max_attempts,
        "Attempts per page for throttling and transient faults.",
    ),
    (
        "max_retry_time",
        "S",
        _RETRY.max_elapsed_s,
        "Time budget of one page, seconds: no attempt runs, and no retry starts, after S seconds from its first attempt.",
    ),
    (
        "connect_timeout",
        "S",
        _FETCH.connect_timeout_s,
        "Longest wait for a connection, seconds.",
    ),
    (
        "read_timeout",
        "S",
        _FETCH.read_timeout_s,
        "Longest pause while an answer arrives, seconds (it never fires while bytes keep coming).",
    ),
    (
        "request_timeout",
        "S",
        _FETCH.request_timeout_s,
        "Longest one request may take, from connecting to the last byte, seconds; a slower answer (a body that trickles in) is cut off and retried. An attempt is also cut off when the page's --max-retry-time runs out.",
    ),
    (
        "max_offset",
        "N",
        _FETCH.max_offset,
        "Largest offset the API accepts; a larger result is read in latest_update_time ranges.",
    ),
    (
        "max_repair_rounds",
        "N",
        _FETCH.max_repair_rounds,
        "Rounds of re-reading pages to prove a project complete (gaps, moved records, short pages) before it fails without publishing.",
    ),
    (
        "total_num_tolerance",
        "N|P%",
        str(_FETCH.total_tolerance),
        "Accept a total_num that differs from the records the list provably holds by up to N records or P percent of total_num (a gateway known to over-count); the report shows the difference every time. 0: exact.",
    ),
    (
        "max_quarantined",
        "N|P%",
        str(QuarantineLimit()),
        "Fail a project, without publishing it, when more records than this fail validation: a count (50) or a share of the records read (1%).",
    ),
]


def _add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("what to read and where to write")
    where.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with any of the settings below and [[projects]] across regions; flags override it.",
    )
    where.add_argument(
        "--project-id",
        action="append",
        dest="project_ids",
        metavar="ID",
        help="Project to read; repeat for several projects (or give them comma-separated).",
    )
    where.add_argument(
        "--all-projects",
        action="store_true",
        default=None,
        help="Read every project the credentials can access in the endpoint's region (listed through IAM); give no --project-id then.",
    )
    where.add_argument(
        "--discovery-region",
        metavar="R",
        help="With --all-projects: the region whose projects are read, when the --endpoint host does not name it (a dedicated cloud, a proxy).",
    )
    where.add_argument("--out", metavar="DIR", help="Output folder, or s3://bucket/prefix.")
    where.add_argument(
        "--endpoint",
        metavar="URL",
        help="HSS endpoint, e.g. https://hss.cn-north-4.myhuaweicloud.com (env HSS_ENDPOINT).",
    )
    where.add_argument(
        "--region",
        metavar="R",
        help="Public-cloud region; sets the endpoint from the provider's region table (env HSS_REGION).",
    )
    where.add_argument(
        "--snapshot-date",
        metavar="YYYY-MM-DD",
        help="Partition date: the date the inventory is read on (default: today, UTC); only today or yesterday are accepted, the API has no history.",
    )
    where.add_argument(
        "--allow-any-snapshot-date",
        action="store_true",
        default=None,
        help="Accept a --snapshot-date other than today or yesterday: label today's inventory with that date on purpose (recorded as opt-in in the report).",
    )
    where.add_argument(
        "--skip-published",
        action="store_true",
        default=None,
        help="Resume: leave out every project whose partition for this snapshot date a run of the same query already published (no request, its files untouched; the report lists it as skipped). Without it a rerun reads and replaces every partition.",
    )
    where.add_argument("--report", metavar="FILE", help="Write the run report as JSON to FILE.")
    where.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="S3-compatible endpoint for s3:// output, e.g. OBS or MinIO (default: env AWS_ENDPOINT_URL).",
    )
    where.add_argument(
        "--format",
        metavar="{parquet,iceberg}",
        help="parquet: hive-partitioned Parquet under --out (default); iceberg: an Iceberg table, one commit per run (pip install 'hss-image-connector[iceberg]').",
    )
    where.add_argument(
        "--catalog",
        metavar="NAME",
        help="With --format iceberg: a pyiceberg catalog by name, configured in .pyiceberg.yaml or PYICEBERG_CATALOG__NAME__* variables (default: an embedded SQLite catalog and warehouse under --out).",
    )
    where.add_argument(
        "--table",
        metavar="NS.NAME",
        help="With --format iceberg: the table's identifier (default hss.image_local_info).",
    )

    secrets = parser.add_argument_group(
        "credentials (from the environment or files, never flag values)"
    )
    secrets.add_argument(
        "--token-file",
        metavar="PATH",
        help="Read the IAM token from PATH instead of HSS_AUTH_TOKEN.",
    )
    secrets.add_argument(
        "--credentials-file",
        metavar="PATH",
        help="AK/SK from the console's credentials.csv or a TOML file.",
    )
    secrets.add_argument(
        "--iam-endpoint",
        metavar="URL",
        help="IAM endpoint for HSS_IAM_USER tokens (default: derived from the region).",
    )
    secrets.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=None,
        help="Allow http:// to a non-loopback endpoint (sends credentials unencrypted).",
    )

    api = parser.add_argument_group("API query parameters (validated before any request)")
    for f in fields(Filters):
        kind, choices = f.metadata["kind"], f.metadata["choices"]
        metavar = {"int": "N", "time": "MS", "bool": "true|false"}.get(kind, "TEXT")
        api.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            metavar="{" + ",".join(choices) + "}" if choices else metavar,
            help=render(f.metadata["help"], flag),
        )

    tuning = parser.add_argument_group("speed and limits")
    for key, metavar, default, help_text in TUNING:
        shown = f"{default:g}" if isinstance(default, float) else default
        tuning.add_argument(
            "--" + key.replace("_", "-"),
            metavar=metavar,
            help=f"{help_text} Default {shown}.".replace("%", "%%"),
        )
    tuning.add_argument(
        "--progress",
        metavar="{auto,bar,log,off}",
        help="A live line on a terminal, log lines otherwise (default auto).",
    )
    tuning.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")
    tuning.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="Log lines as text, or one JSON object per line for log pipelines (time, level, "
        "logger, message, run_id, project and the record's fields); default text.",
    )


def exit_codes_help(codes: Mapping[int, str] = EXIT_CODES) -> str:
    """The exit codes, one a line, for the end of ``--help`` (batch schedulers act on them)."""
    width = max(len(str(code)) for code in codes)
    lines = [f"  {code:>{width}}  {meaning}" for code, meaning in codes.items()]
    return "exit codes:\n" + "\n".join(lines)


CHECK_DESCRIPTION = """\
Check that a sync with these flags would work, and write nothing: the configuration is
validated as sync validates it; every project is sent one small request (offset 0, 10
records, no retries) with the credentials; the output (--out: a folder, or s3://) and the
report's folder are checked writable without writing into the lake, its OUT.connector
folder or the report. Prints a table: project, endpoint, auth kind, result, and the images
visible or the API's error (error_code, HTTP status); then the output's result.
"""


def build_parser(*, with_simulator: bool = True) -> argparse.ArgumentParser:
    """The whole CLI; the simulator's flags (and imports) only when asked for."""
    parser = argparse.ArgumentParser(
        prog="hss-images",
        description="Sync the Huawei Cloud HSS local image list into hive-partitioned Parquet.",
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
        allow_abbrev=False,  # --token must not pass for --token-file (and show its value)
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sync = commands.add_parser(
        "sync",
        allow_abbrev=False,
        help="Read projects into Parquet.",
        description="Read the local image list of each project into hive-partitioned Parquet.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_sync_arguments(sync)
    checker = commands.add_parser(
        "check",
        allow_abbrev=False,
        help="Check the configuration, every project and the output; write nothing.",
        description=CHECK_DESCRIPTION,
        epilog=exit_codes_help(CHECK_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_sync_arguments(checker)
    _add_diff_parser(commands)
    simulate = commands.add_parser(
        "simulate",
        allow_abbrev=False,
        help="Serve the embedded HSS simulator.",
        description="Serve the embedded HSS API simulator until stopped.",
    )
    if with_simulator:
        from connector.simulator import cli as simulator_cli

        simulator_cli.add_arguments(simulate)
    demo = commands.add_parser(
        "demo",
        allow_abbrev=False,
        help="Simulator + sync + summary, no account needed.",
        description="Start the simulator, sync two days of a few projects from it (yesterday's "
        "and today's snapshot), summarise the Parquet written and show what changed.",
    )
    demo.add_argument(
        "--out", default="demo-output", metavar="DIR", help="Output folder (default ./demo-output)."
    )
    demo.add_argument(
        "--records",
        type=_int,
        default=None,
        metavar="N",
        help="Records per project (default: a realistic mix of tens of thousands).",
    )
    return parser


DIFF_DESCRIPTION = """\
What changed between two snapshots of each project of LAKE (a folder, s3://bucket/prefix, or
the Iceberg table of --format iceberg: LAKE/catalog.db, or --catalog/--table): one row per
image record that appeared, was removed or changed, matched by the natural key (image_id,
image_digest, image_name, image_version, host_id, agent_id; nulls match). By default --to is
each project's latest snapshot and --from the one before it. Without --output, prints a
summary per project (counts by change, the largest rises in vulnerabilities); with it,
writes the rows as Parquet and prints their counts.
"""

DIFF_EXIT_CODES = {
    0: "the diff was computed (whatever it holds)",
    1: "unexpected error, or reading the lake or writing --output failed",
    2: "a date without a snapshot, a project not in the lake, snapshots of different "
    "queries, or another bad flag",
    5: "a snapshot holds one natural key twice (not one the connector published)",
}


def _add_diff_parser(commands: Any) -> None:
    differ = commands.add_parser(
        "diff",
        allow_abbrev=False,
        help="What changed between two snapshots of the lake.",
        description=DIFF_DESCRIPTION,
        epilog=exit_codes_help(DIFF_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    differ.add_argument("lake", metavar="LAKE", help="The lake: a folder, or s3://bucket/prefix.")
    differ.add_argument(
        "--from",
        dest="from_date",
        metavar="YYYY-MM-DD",
        help="The earlier snapshot (default: the one before --to, per project).",
    )
    differ.add_argument(
        "--to",
        dest="to_date",
        metavar="YYYY-MM-DD",
        help="The later snapshot (default: each project's latest).",
    )
    differ.add_argument(
        "--project-id",
        action="append",
        dest="project_ids",
        metavar="ID",
        help="Compare this project only; repeat for several (default: every project in LAKE).",
    )
    differ.add_argument(
        "--output",
        metavar="FILE.parquet",
        help="Write the rows to this Parquet file (put in place whole) instead of the summary.",
    )
    differ.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="S3-compatible endpoint for an s3:// LAKE (default: env AWS_ENDPOINT_URL).",
    )
    differ.add_argument(
        "--catalog",
        metavar="NAME",
        help="Read the Iceberg table of --format iceberg from this pyiceberg catalog "
        "(.pyiceberg.yaml or PYICEBERG_CATALOG__NAME__...; default: the embedded catalog "
        "LAKE/catalog.db, read when LAKE holds it). LAKE still holds the quarantine.",
    )
    differ.add_argument(
        "--table",
        metavar="NAMESPACE.NAME",
        help="The Iceberg table's identifier (default: hss.image_local_info).",
    )


def run_diff(args: argparse.Namespace) -> int:
    """``hss-images diff``: the summary, or the rows into --output and their counts."""
    from connector.lake.diff import diff

    project_ids = [p.strip() for value in args.project_ids or () for p in value.split(",")]
    result = diff(
        args.lake,
        from_date=args.from_date,
        to_date=args.to_date,
        project_ids=[p for p in project_ids if p] or None,
        s3_endpoint=args.s3_endpoint,
        catalog=args.catalog,
        table=args.table,
    )
    if args.output is None:
        print(result.summary())
        return 0
    rows = result.write(args.output)
    total = result.counts()["total"]
    said = ", ".join(f"{total[change]:,} {change}" for change in ("appeared", "removed", "changed"))
    print(f"{rows:,} rows written to {args.output} ({said})", file=sys.stderr)
    for side in result.one_sided:
        print(f"project {side.project_id}: not compared, {side.describe()}", file=sys.stderr)
    for q in result.quarantine:
        print(
            f"quarantine: {q.records} record(s) of project {q.project_id} on {q.snapshot_date} "
            f"are neither in nor out of this diff: {q.path}",
            file=sys.stderr,
        )
    return 0


_FLAG_NAMES = {"project_ids": "--project-id"}


def flag(key: str) -> str:
    """A setting as the command line names it, in every message: its flag
    (``max_quarantined`` -> ``--max-quarantined``, ``project_ids`` -> ``--project-id``)."""
    return _FLAG_NAMES.get(key, "--" + key.replace("_", "-"))


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """Flags over the config file over the environment over the defaults.

    The flags, the file and HSS_ENDPOINT / HSS_REGION are only gathered here; ``build_config``
    checks them all alike and names an invalid value where it was given (``flag --rate``,
    ``file sync.toml key rate``). Credentials come from the environment or files only.
    """
    env = os.environ if environ is None else environ
    flags = {
        key: Setting(getattr(args, key), f"flag {flag(key)}") for key in KEYS if hasattr(args, key)
    }
    with naming(flag):
        layers = [flags, load_config_file(args.config) if args.config else {}]
        for key, variable in (("endpoint", "HSS_ENDPOINT"), ("region", "HSS_REGION")):
            if env.get(variable):  # HSS_ENDPOINT first, as it always was
                layers.append({key: Setting(env[variable], f"environment {variable}")})
                break
        return build_config(layers, environ=env)


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """On a terminal, clear the live progress line before a log line takes its place."""

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream.isatty():
            self.stream.write("\r\033[K")
        super().emit(record)


def _setup_logging(
    verbose: bool, redactor: Redactor | None = None, log_format: LogFormat = "text"
) -> None:
    """The ``connector`` logger to stderr, as text or JSON lines, secrets redacted.

    Only the CLI calls this: as a library or in Airflow, the connector's records go to the
    application's (Airflow's) own handlers."""
    redactor = redactor if redactor is not None else Redactor()
    handler: logging.Handler
    if log_format == "json":  # no terminal control codes between JSON lines
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(redactor))
    else:
        handler = _LineHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger("connector")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


async def _run_with_signals(config: Config, redactor: Redactor) -> RunReport:
    """Run, turning SIGTERM into the same clean cancellation as Ctrl-C."""
    from connector.job.pipeline import run_async  # pyarrow and aiohttp: only once a run starts

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    before = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_async(config, redactor=redactor)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, TypeError):
            loop.remove_signal_handler(signal.SIGTERM)  # leaves SIGTERM's default action:
            signal.signal(signal.SIGTERM, before)  # give back the one console() installed


def sync(config: Config, redactor: Redactor | None = None, log_format: LogFormat = "text") -> int:
    """Run; the pipeline writes the report (``--report``) whatever happens, and when an
    interruption came before the pipeline could, this does."""
    redactor = redactor if redactor is not None else Redactor(config.auth.secrets())
    if log_format == "json" and config.progress == "auto":
        config = replace(config, progress="log")  # no live line among JSON lines
    try:
        report = asyncio.run(_run_with_signals(config, redactor))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _leave_report(config.report_path, KeyboardInterrupt(), redactor, run_id=config.run_id)
        _say(log_format, "interrupted: nothing was published for unfinished projects", 130)
        return 130
    data = report.to_dict()  # redacted
    fields = {
        key: data[key]
        for key in ("run_id", "status", "exit_code", "records_fetched", "records_written")
    }
    _say(log_format, report.summary(), report.exit_code, fields)
    return report.exit_code


def _leave_report(
    path: str | None,
    error: BaseException,
    redactor: Redactor,
    *,
    run_id: str | None = None,
    endpoint: str | None = None,
) -> None:
    """Write the report of a run that stopped before the pipeline wrote one: a
    configuration error, or a signal during start-up. A report of ``run_id`` already at
    ``path`` (the pipeline's) is left as it is."""
    if not path:
        return
    if run_id is not None and _run_id_at(path) == run_id:
        return
    now = datetime.now(UTC).isoformat(timespec="seconds")
    report = RunReport(
        run_id=run_id or new_run_id(),
        snapshot_date=ReadDate.now().isoformat(),
        endpoint=endpoint or "",
        started_at=now,
        finished_at=now,
        redactor=redactor,
    )
    if isinstance(error, KeyboardInterrupt):
        report.status, report.exit_code, report.error_type = "interrupted", 130, "Interrupted"
        report.error = "the run was stopped (SIGINT/SIGTERM) before it read anything"
    else:
        report.status, report.error_type = "failed", type(error).__name__
        report.exit_code = error.exit_code if isinstance(error, ConnectorError) else 1
        report.error = " ".join(str(error).split()) or "no message"
    held = _mask(signal.SIG_BLOCK, _STOPPING)  # the report is written whole
    try:
        write_report(path, report.to_json())
    except OSError as exc:
        print(
            redactor(f"cannot write the report to {path}: {exc.strerror or exc}"), file=sys.stderr
        )
    finally:
        _mask(signal.SIG_SETMASK, held)


def _run_id_at(path: str) -> str | None:
    """The run id of the report at ``path``, if there is one that can be read."""
    import orjson

    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        found = orjson.loads(Path(path).expanduser().read_bytes()).get("run_id")
        return found if isinstance(found, str) else None
    return None


def check(config: Config, redactor: Redactor, log_format: LogFormat = "text") -> int:
    """``hss-images check``: the table on stdout; exit 0, 2 (configuration) or 3 (API)."""
    from connector.job.check import check_async

    config = config.at_start()  # the snapshot date, as a run starting now checks it
    try:
        result = asyncio.run(check_async(config, redactor=redactor))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say(log_format, "interrupted", 130)
        return 130
    print(redactor(result.table()))
    if log_format == "json":
        log.info(
            "check: exit code %d",
            result.exit_code,
            extra={
                "exit_code": result.exit_code,
                "projects": len(result.projects),
                "projects_ok": sum(p.ok for p in result.projects),
                "output_ok": all(o.ok for o in result.outputs),
            },
        )
    return result.exit_code


def _say(
    log_format: LogFormat, text: str, exit_code: int, fields: Mapping[str, Any] | None = None
) -> None:
    """A closing message: printed to stderr, or one JSON log line with ``--log-format json``."""
    if log_format == "json":
        level = logging.INFO if exit_code == 0 else logging.ERROR
        log.log(level, "%s", text, extra={"exit_code": exit_code, **(fields or {})})
    else:
        print(text, file=sys.stderr)


NO_DRY_RUN = (
    "command line: there is no --dry-run; use `hss-images check` with the same options: it "
    "reads one small page of each project and checks the output, and writes nothing"
)
"""What ``--dry-run`` anywhere on the command line answers (exit 2)."""


def _unknown(arguments: Sequence[str]) -> ConfigError:
    """Arguments argparse does not know, named without a value: ``--token s3cr3t`` (no
    abbreviation of --token-file) must not print the secret, as argparse's own error would."""
    options = []
    for argument in arguments:
        if argument.startswith("--"):
            options.append(argument.split("=", 1)[0])
        elif argument.startswith("-") and len(argument) > 1:
            options.append(argument[:2])  # -tVALUE: the option letter only
    values = len(arguments) - len(options)
    said = (
        [f"unknown option{'s' if len(options) > 1 else ''} {', '.join(options)}"] if options else []
    )
    if values:
        said.append(f"{values} unexpected value(s), not shown (one may be a secret)")
    return ConfigError(
        "; ".join(said) + ". Options are spelled out in full (no abbreviations); credentials "
        "come from the environment or files (--token-file, --credentials-file), see --help",
        where="command line",
    )


_STOPPING = {signal.SIGINT, signal.SIGTERM}


def _mask(how: int, signals: Iterable[int]) -> set[int]:
    """Hold or let in signals (``pthread_sigmask``); the previous mask. Nothing where the
    platform has no signal masks (Windows)."""
    if not hasattr(signal, "pthread_sigmask"):
        return set()
    return set(signal.pthread_sigmask(how, signals))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line, an exit code. Signals held by ``console`` until here are let in
    once a SIGINT/SIGTERM can leave the run report (``--report``) and exit 130.

    Inside, the library names every setting by its flag (``flag``): in errors, the log and
    the run report."""
    with naming(flag):
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if any(argument.split("=", 1)[0] == "--dry-run" for argument in arguments):
        # before argparse: anywhere, with or without a command, and no other value echoed
        print(f"ConfigError: {NO_DRY_RUN}", file=sys.stderr)
        return 2
    parser = build_parser(with_simulator=bool(arguments) and arguments[0] == "simulate")
    args, unknown = parser.parse_known_args(arguments)
    verbose = bool(getattr(args, "verbose", False))
    log_format: LogFormat = getattr(args, "log_format", None) or "text"
    report_path: str | None = getattr(args, "report", None) if args.command == "sync" else None
    redactor = Redactor()
    config: Config | None = None
    try:
        _mask(signal.SIG_UNBLOCK, _STOPPING)
        if unknown:
            raise _unknown(unknown)
        if args.command == "simulate":
            from connector.simulator import cli as simulator_cli

            return simulator_cli.run(args)
        if args.command == "diff":
            return run_diff(args)
        if args.command == "demo":
            _setup_logging(False)
            from connector.demo import run_demo

            return run_demo(out=args.out, records=args.records)
        _setup_logging(verbose, redactor, log_format)  # the redactor learns the secrets next
        config = config_from_args(args)
        redactor.add(*config.auth.secrets())
        if args.command == "check":
            return check(config, redactor, log_format)
        return sync(config, redactor, log_format)
    except KeyboardInterrupt as stop:  # SIGINT/SIGTERM before the run took them over
        if config is None:
            _leave_report(report_path, stop, redactor, endpoint=getattr(args, "endpoint", None))
        else:
            _leave_report(config.report_path, stop, redactor, run_id=config.run_id)
        _say(log_format, "interrupted: nothing was published", 130)
        return 130
    except ConnectorError as error:
        if config is None:
            _leave_report(report_path, error, redactor, endpoint=getattr(args, "endpoint", None))
        if log_format == "json":
            log.error("%s: %s", type(error).__name__, error, extra=error_fields(error))
        else:
            print(redactor(f"{type(error).__name__}: {error}"), file=sys.stderr)
        return error.exit_code
    except Exception as error:  # not the connector's own: one line, the traceback with -v
        if config is None:
            _leave_report(report_path, error, redactor, endpoint=getattr(args, "endpoint", None))
        message = " ".join(str(error).split()) or "no message"
        line = f"{type(error).__name__}: {message} (unexpected; -v shows the traceback)"
        if log_format == "json":
            log.error("%s", line, exc_info=error if verbose else None, extra=error_fields(error))
            return 1
        if verbose:
            print(redactor(traceback.format_exc()), file=sys.stderr, end="")
        print(redactor(line), file=sys.stderr)
        return 1


def console() -> NoReturn:
    """The ``hss-images`` command: ``main`` in a process of its own, its collector tuned.

    SIGTERM is caught from here on, and SIGINT/SIGTERM are held until ``main`` can answer
    them with an ``interrupted`` report and exit 130 (they would otherwise end the process
    with no report while it starts). Only pyarrow-free modules are imported before this,
    so the window in which SIGTERM still kills the process silently is the interpreter's
    own start (measured in the README's Exit codes)."""
    _mask(signal.SIG_BLOCK, _STOPPING)
    signal.signal(signal.SIGTERM, _terminate)
    _tune_gc()
    try:
        code = main()
    except KeyboardInterrupt:  # a second stop while the first was answered: report written
        code = 130
    _mask(signal.SIG_BLOCK, _STOPPING)  # the exit code stands
    sys.exit(code)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops the CLI as Ctrl-C does (outside a run, which cancels itself)."""
    raise KeyboardInterrupt


def _tune_gc() -> None:
    """What is imported by now lives until exit: the collector stops walking it
    (``gc.freeze``). The youngest generation is collected every 10,000 new objects instead
    of 700, so most objects of a request are freed by reference counting before any
    collection sees them. Together 0.15 -> 0.04 s of collection per 100,000 records. Only
    in a process of its own: a library call (Airflow) leaves its host's collector alone."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


if __name__ == "__main__":  # pragma: no cover
    console()
