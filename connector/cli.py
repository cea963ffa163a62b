"""``hss-images``: a thin shell over ``connector.run``.

    hss-images sync       --project-id P --out DIR (--endpoint URL | --region R) [filters]
    hss-images simulate   serve the embedded HSS simulator
    hss-images demo       simulator + sync + a summary of the Parquet written

Exit codes: 0 success; 1 unexpected error or output failure; 2 configuration error;
3 API or authentication error; 4 partial failure (some projects published, some not);
5 data check failed (too many quarantined records, or a completeness check); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

from .config import (
    Auth,
    Config,
    FetchSettings,
    Filters,
    QuarantineLimit,
    RetryPolicy,
    Secret,
    endpoint_for_region,
)
from .errors import ConfigError, ConnectorError
from .pipeline import run_async
from .report import RunReport
from .signing import AkSkCredentials

__all__ = ["EXIT_CODES", "build_parser", "config_from_args", "main"]

log = logging.getLogger("connector")

EXIT_CODES = {
    0: "success: every project was published",
    1: "unexpected error, or writing the output failed",
    2: "configuration error (flags, environment, config file); nothing was requested",
    3: "API or authentication error; nothing was published",
    4: "partial failure: some projects were published, others failed (see the report)",
    5: "data check failed: too many quarantined records or a completeness check; "
    "the project was not published",
    130: "interrupted (SIGINT/SIGTERM); nothing half-written is left visible",
}

ENVIRONMENT = {
    "HSS_AUTH_TOKEN": "IAM token sent as X-Auth-Token (or use --token-file).",
    "HSS_ACCESS_KEY": "Access key for AK/SK request signing (with HSS_SECRET_KEY).",
    "HSS_SECRET_KEY": "Secret key for AK/SK request signing.",
    "HSS_SECURITY_TOKEN": "Security token of temporary AK/SK credentials.",
    "HSS_ENDPOINT": "Default for --endpoint.",
    "HSS_REGION": "Default for --region.",
}


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-28, got {text!r}") from None


def _add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("what to read and where to write")
    where.add_argument(
        "--project-id",
        action="append",
        dest="project_ids",
        metavar="ID",
        help="Project to read; repeat for several projects. Required.",
    )
    where.add_argument(
        "--out", metavar="DIR", help="Output folder (or s3://bucket/prefix). Required."
    )
    where.add_argument(
        "--endpoint",
        metavar="URL",
        help="HSS endpoint, e.g. https://hss.cn-north-4.myhuaweicloud.com (env HSS_ENDPOINT).",
    )
    where.add_argument(
        "--region",
        metavar="R",
        help="Public-cloud region; sets the endpoint from the provider's table (env HSS_REGION).",
    )
    where.add_argument(
        "--snapshot-date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="Partition date (default: today, UTC).",
    )
    where.add_argument("--report", metavar="FILE", help="Write the run report as JSON to FILE.")
    where.add_argument(
        "--token-file",
        metavar="PATH",
        help="Read the IAM token from PATH instead of HSS_AUTH_TOKEN.",
    )
    where.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="Allow http:// to a non-loopback endpoint (sends credentials unencrypted).",
    )

    api = parser.add_argument_group("API query parameters (sent as documented; validated first)")
    for f in fields(Filters):
        kind = f.metadata["kind"]
        kwargs: dict[str, Any] = {"help": f.metadata["help"], "dest": f.name}
        if f.metadata["choices"]:
            kwargs["choices"] = f.metadata["choices"]
        if kind in ("int", "time"):
            kwargs["type"], kwargs["metavar"] = _int, "MS" if kind == "time" else "N"
        elif kind == "bool":
            kwargs["type"], kwargs["metavar"] = _bool, "true|false"
        else:
            kwargs["metavar"] = kwargs.get("metavar", "TEXT") if not f.metadata["choices"] else None
        api.add_argument("--" + f.name.replace("_", "-"), **kwargs)

    tuning = parser.add_argument_group("speed and limits")
    defaults = FetchSettings()
    policy = RetryPolicy()
    tuning.add_argument(
        "--page-size",
        type=_int,
        default=defaults.page_size,
        metavar="N",
        help=f"Records per request, 10..200 (default {defaults.page_size}).",
    )
    tuning.add_argument(
        "--rate",
        type=float,
        default=defaults.rate,
        metavar="R",
        help=f"Requests per second, shared by all projects on one endpoint; 0 = no limit (default {defaults.rate:g}). Lowered automatically when throttled.",
    )
    tuning.add_argument(
        "--burst",
        type=_int,
        default=defaults.burst,
        metavar="N",
        help=f"Requests allowed back to back above the rate (default {defaults.burst}).",
    )
    tuning.add_argument(
        "--concurrency",
        type=_int,
        default=defaults.concurrency,
        metavar="N",
        help=f"Requests in flight at once (default {defaults.concurrency}).",
    )
    tuning.add_argument(
        "--max-attempts",
        type=_int,
        default=policy.max_attempts,
        metavar="N",
        help=f"Attempts per page for throttling and transient faults (default {policy.max_attempts}).",
    )
    tuning.add_argument(
        "--max-retry-time",
        type=float,
        default=policy.max_elapsed_s,
        metavar="S",
        help=f"Give up retrying one page after S seconds (default {policy.max_elapsed_s:g}).",
    )
    tuning.add_argument(
        "--connect-timeout",
        type=float,
        default=defaults.connect_timeout_s,
        metavar="S",
        help=f"Connect timeout in seconds (default {defaults.connect_timeout_s:g}).",
    )
    tuning.add_argument(
        "--read-timeout",
        type=float,
        default=defaults.read_timeout_s,
        metavar="S",
        help=f"Read timeout in seconds (default {defaults.read_timeout_s:g}).",
    )
    tuning.add_argument(
        "--max-offset",
        type=_int,
        default=defaults.max_offset,
        metavar="N",
        help=f"Largest offset the API accepts; larger queries are split by latest_update_time (default {defaults.max_offset}).",
    )
    tuning.add_argument(
        "--max-quarantined",
        default=str(QuarantineLimit()),
        metavar="N|P%",
        help="Fail a project (without publishing it) when more records than this fail validation: a count (50) or a share of the records (1%%). Default 10%%.",
    )
    tuning.add_argument(
        "--progress",
        choices=("auto", "bar", "log", "off"),
        default="auto",
        help="Live line on a terminal, log lines otherwise (default auto).",
    )
    tuning.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hss-images",
        description="Sync the Huawei Cloud HSS local image list into hive-partitioned Parquet.",
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sync = commands.add_parser(
        "sync",
        help="Read projects into Parquet.",
        description="Read the local image list of each project into hive-partitioned Parquet.",
    )
    _add_sync_arguments(sync)
    from .simulator import cli as simulator_cli

    simulate = commands.add_parser(
        "simulate",
        help="Serve the embedded HSS simulator.",
        description="Serve the embedded HSS API simulator until stopped.",
    )
    simulator_cli.add_arguments(simulate)
    demo = commands.add_parser(
        "demo",
        help="Simulator + sync + summary, no account needed.",
        description="Start the simulator, sync a few projects from it and summarise the Parquet written.",
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


def _read_secret_file(path: str, what: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", where=path) from None
    if not text:
        raise ConfigError(f"the {what} file is empty", where=path)
    return text


def auth_from(args: argparse.Namespace, environ: dict[str, str]) -> Auth:
    token_file = getattr(args, "token_file", None)
    token = _read_secret_file(token_file, "token") if token_file else environ.get("HSS_AUTH_TOKEN")
    access_key, secret_key = environ.get("HSS_ACCESS_KEY"), environ.get("HSS_SECRET_KEY")
    if token and (access_key or secret_key):
        raise ConfigError("both a token and an access key are set; unset one of them")
    if token:
        return Auth(token=Secret(token))
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise ConfigError("HSS_ACCESS_KEY and HSS_SECRET_KEY go together; set both")
        return Auth(
            aksk=AkSkCredentials(access_key, secret_key, environ.get("HSS_SECURITY_TOKEN") or None)
        )
    raise ConfigError(
        "no credentials: set HSS_AUTH_TOKEN (or pass --token-file PATH), "
        "or HSS_ACCESS_KEY and HSS_SECRET_KEY"
    )


def config_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if environ is None else environ)
    if not args.project_ids:
        raise ConfigError("give at least one --project-id")
    if not args.out:
        raise ConfigError("give an output folder with --out")
    endpoint = args.endpoint or env.get("HSS_ENDPOINT")
    region = args.region or env.get("HSS_REGION")
    if args.endpoint and args.region:
        raise ConfigError("give --endpoint or --region, not both")
    if not endpoint:
        if not region:
            raise ConfigError(
                "give --endpoint URL or --region R (or set HSS_ENDPOINT / HSS_REGION)"
            )
        endpoint = endpoint_for_region(region)
    filters = Filters(**{f.name: getattr(args, f.name) for f in fields(Filters)})
    fetch = FetchSettings(
        page_size=args.page_size,
        rate=args.rate,
        burst=args.burst,
        concurrency=args.concurrency,
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        max_offset=args.max_offset,
        retry=RetryPolicy(max_attempts=args.max_attempts, max_elapsed_s=args.max_retry_time),
    )
    extra: dict[str, Any] = {}
    if args.snapshot_date is not None:
        extra["snapshot_date"] = args.snapshot_date
    return Config(
        projects=tuple(args.project_ids),
        endpoint=endpoint,
        out=args.out,
        auth=auth_from(args, env),
        filters=filters,
        fetch=fetch,
        max_quarantined=QuarantineLimit.parse(args.max_quarantined),
        allow_insecure_http=args.allow_insecure_http,
        report_path=args.report,
        progress=args.progress,
        **extra,
    )


class _Redact(logging.Filter):
    """Defence in depth: no secret reaches a log line, even by accident."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def _setup_logging(verbose: bool, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_Redact(secrets))
    root = logging.getLogger("connector")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


async def _run_with_signals(config: Config) -> RunReport:
    """Run, turning SIGTERM into the same clean cancellation as Ctrl-C."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_async(config)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def sync(config: Config) -> int:
    try:
        report = asyncio.run(_run_with_signals(config))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: nothing was published for unfinished projects", file=sys.stderr)
        return 130
    if config.report_path:
        try:
            Path(config.report_path).write_bytes(report.to_json())
        except OSError as exc:
            print(
                f"OutputError: cannot write the report to {config.report_path}: {exc.strerror}",
                file=sys.stderr,
            )
            return 1
    print(report.summary(), file=sys.stderr)
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "simulate":
            from .simulator import cli as simulator_cli

            return simulator_cli.run(args)
        if args.command == "demo":
            _setup_logging(False)
            from .demo import run_demo

            return run_demo(out=args.out, records=args.records)
        config = config_from_args(args)
        _setup_logging(args.verbose, config.auth.secrets())
        return sync(config)
    except ConnectorError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
