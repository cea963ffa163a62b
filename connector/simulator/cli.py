"""``hss-images simulate``: serve the simulator until SIGINT/SIGTERM.

The first stdout line is exactly the base URL (``http://127.0.0.1:PORT``), flushed, so a
parent process can read it; diagnostics go to stderr. Exit code 0 on a clean stop, 2 on
an invalid flag value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping

from connector.simulator.config import DriftConfig, FaultConfig, ProjectFailure, SimulatorConfig
from connector.simulator.server import running_simulator

__all__ = ["add_arguments", "config_from_args", "run"]

TOKEN_ENV = "HSS_SIM_TOKEN"


def _project_records(value: str) -> tuple[str, int]:
    project, sep, count = value.rpartition("=")
    if not sep or not project or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected PROJECT=N, got {value!r}")
    return project, int(count)


def _project_failure(value: str) -> tuple[str, ProjectFailure]:
    project, *rest = value.split(":")
    if not project or len(rest) > 3:
        raise argparse.ArgumentTypeError(f"expected PROJECT[:COUNT[:STATUS[:CODE]]], got {value!r}")
    try:
        failure = ProjectFailure(
            count=int(rest[0]) if rest and rest[0] not in ("", "all") else None,
            status=int(rest[1]) if len(rest) > 1 else 400,
            **({"error_code": rest[2]} if len(rest) > 2 else {}),
        )
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid --fail-project {value!r}: {exc}") from exc
    return project, failure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` flags to ``parser``."""
    serve = parser.add_argument_group("serving")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    serve.add_argument("--records", type=int, default=1000, help="images per project (1000)")
    serve.add_argument(
        "--project-records",
        type=_project_records,
        action="append",
        default=[],
        metavar="PROJECT=N",
        help="images for one project (repeatable)",
    )
    serve.add_argument("--seed", type=int, default=0, help="seed of all generated data (0)")
    serve.add_argument(
        "--max-offset", type=int, default=2_000_000, help="largest accepted offset (2000000)"
    )
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added latency (0)")
    serve.add_argument("--jitter-ms", type=float, default=0.0, help="uniform ± jitter (0)")

    auth = parser.add_argument_group("auth and throttling")
    auth.add_argument(
        "--token",
        action="append",
        default=[],
        help=f"accepted X-Auth-Token (repeatable; also ${TOKEN_ENV}); none given: auth off",
    )
    auth.add_argument(
        "--expired-token", action="append", default=[], help="token answered with APIG.0307"
    )
    auth.add_argument("--rate", type=float, default=0.0, help="requests/s per token (0 = off)")
    auth.add_argument("--burst", type=int, default=None, help="bucket size (default: the rate)")
    auth.add_argument("--rate-per-minute", type=int, default=0, help="requests/min (0 = off)")
    auth.add_argument(
        "--retry-after", type=int, default=None, help="Retry-After seconds on 429 (omitted)"
    )

    faults = parser.add_argument_group("transport faults (probability per request)")
    for name, help_text in (
        ("500", "HTTP 500 with an HSS.0500 body"),
        ("503", "HTTP 503 with a gateway HTML page"),
        ("reset", "connection reset without a response"),
        ("truncate", "full Content-Length declared, half the body sent"),
        ("invalid-json", "HTTP 200 with a body that is not JSON"),
        ("html", "HTTP 200 with a text/html error page"),
        ("slow", "answer after --fault-slow-seconds"),
    ):
        faults.add_argument(f"--fault-{name}-rate", type=float, default=0.0, help=help_text)
    faults.add_argument("--fault-slow-seconds", type=float, default=5.0, help="(5)")
    faults.add_argument(
        "--fault-burst", type=int, default=0, help="requests that also fail after a fault (0)"
    )
    faults.add_argument(
        "--fault-project",
        action="append",
        default=None,
        help="limit transport faults to this project (repeatable; default all)",
    )
    faults.add_argument(
        "--fail-project",
        type=_project_failure,
        action="append",
        default=[],
        metavar="PROJECT[:COUNT[:STATUS[:CODE]]]",
        help="fail the first COUNT requests of PROJECT (default: all, 400, HSS.0013)",
    )

    data = parser.add_argument_group("data faults (fraction of records)")
    for name, help_text in (
        ("numeric-string", 'an integer sent as "123" (lossless)'),
        ("fraction", "1.5 where an integer belongs"),
        ("iso-date", "an ISO-8601 string where epoch ms belong"),
        ("missing-field", "optional fields dropped (lossless)"),
        ("extra-field", "unknown extra fields (lossless)"),
    ):
        data.add_argument(f"--data-{name}-rate", type=float, default=0.0, help=help_text)

    drift = parser.add_argument_group("drift (data changing during a crawl)")
    drift.add_argument("--drift-every", type=int, default=0, help="page requests per change")
    drift.add_argument("--drift-inserts", type=int, default=0, help="records added per change")
    drift.add_argument("--drift-deletes", type=int, default=0, help="records removed per change")
    drift.add_argument("--drift-max-events", type=int, default=None, help="changes per project")
    drift.add_argument(
        "--drift-project", action="append", default=None, help="limit drift to this project"
    )


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> SimulatorConfig:
    """The configuration the flags (and ``HSS_SIM_TOKEN``) describe; raises ``ValueError``."""
    tokens = set(args.token)
    if environ.get(TOKEN_ENV):
        tokens.add(environ[TOKEN_ENV])
    faults = FaultConfig(
        http_500_rate=args.fault_500_rate,
        http_503_rate=args.fault_503_rate,
        reset_rate=args.fault_reset_rate,
        truncate_rate=args.fault_truncate_rate,
        invalid_json_rate=args.fault_invalid_json_rate,
        html_rate=args.fault_html_rate,
        slow_rate=args.fault_slow_rate,
        slow_seconds=args.fault_slow_seconds,
        burst=args.fault_burst,
        projects=None if args.fault_project is None else frozenset(args.fault_project),
        project_failures=dict(args.fail_project),
        numeric_string_rate=args.data_numeric_string_rate,
        fraction_rate=args.data_fraction_rate,
        iso_date_rate=args.data_iso_date_rate,
        missing_field_rate=args.data_missing_field_rate,
        extra_field_rate=args.data_extra_field_rate,
    )
    drift = DriftConfig(
        every_n_requests=args.drift_every,
        inserts=args.drift_inserts,
        deletes=args.drift_deletes,
        max_events=args.drift_max_events,
        projects=None if args.drift_project is None else frozenset(args.drift_project),
    )
    return SimulatorConfig(
        seed=args.seed,
        records=args.records,
        project_records=dict(args.project_records),
        tokens=frozenset(tokens),
        expired_tokens=frozenset(args.expired_token),
        rate=args.rate,
        burst=args.burst,
        rate_per_minute=args.rate_per_minute,
        retry_after=args.retry_after,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        max_offset=args.max_offset,
        faults=faults,
        drift=drift,
    )


async def _serve(config: SimulatorConfig, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_simulator(config, host=host, port=port) as simulator:
            print(simulator.base_url, flush=True)
            auth = "on" if config.auth_enabled else "off"
            print(
                f"HSS simulator: {config.records} images per project, auth {auth}; "
                "stop with Ctrl-C",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; the exit code."""
    try:
        config = config_from_args(args, os.environ)
    except (TypeError, ValueError) as exc:
        print(f"hss-images simulate: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(
            f"hss-images simulate: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0
