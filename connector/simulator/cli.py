"""``hss-images simulate``: serve the simulator until SIGINT/SIGTERM.

The first stdout line is exactly the base URL (``http://127.0.0.1:PORT``), flushed, so a
parent process can read it; diagnostics go to stderr. Exit code 0 on a clean stop, 2 on
an invalid flag value.

Credentials the simulator accepts (auth is on as soon as one is given):

    --token T / HSS_SIM_TOKEN                          an accepted X-Auth-Token
    --access-key AK --secret-key SK (pairs, in order)  an AK/SK pair; also
      HSS_SIM_ACCESS_KEY + HSS_SIM_SECRET_KEY (+ HSS_SIM_SECURITY_TOKEN: temporary)
    --security-token AK=TOKEN                          makes AK temporary
    HSS_SIM_IAM_USER + HSS_SIM_IAM_PASSWORD + HSS_SIM_IAM_DOMAIN
                                                       an IAM user (POST /v3/auth/tokens)

Projects GET /v3/auth/projects lists (project discovery): --iam-project NAME=ID, and
--iam-disabled-project NAME=ID for a disabled one; NAME is a region (cn-north-4) or a
sub-project of it (cn-north-4_dev).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from collections.abc import Mapping

from connector.simulator.config import (
    DriftConfig,
    FaultConfig,
    GatewayConfig,
    IamProject,
    PageCut,
    ProjectFailure,
    SimulatorConfig,
)
from connector.simulator.server import running_simulator

__all__ = ["ENVIRONMENT", "add_arguments", "config_from_args", "run"]

TOKEN_ENV = "HSS_SIM_TOKEN"
ACCESS_KEY_ENV = "HSS_SIM_ACCESS_KEY"
SECRET_KEY_ENV = "HSS_SIM_SECRET_KEY"
SECURITY_TOKEN_ENV = "HSS_SIM_SECURITY_TOKEN"
IAM_USER_ENV = "HSS_SIM_IAM_USER"
IAM_PASSWORD_ENV = "HSS_SIM_IAM_PASSWORD"
IAM_DOMAIN_ENV = "HSS_SIM_IAM_DOMAIN"
ENVIRONMENT = {
    TOKEN_ENV: "an accepted X-Auth-Token (as --token)",
    ACCESS_KEY_ENV: f"an accepted access key (with ${SECRET_KEY_ENV}; as --access-key)",
    SECRET_KEY_ENV: f"the secret key of ${ACCESS_KEY_ENV} (as --secret-key)",
    SECURITY_TOKEN_ENV: f"makes ${ACCESS_KEY_ENV} temporary (as --security-token)",
    IAM_USER_ENV: f"an IAM user who may get tokens (with ${IAM_PASSWORD_ENV}, ${IAM_DOMAIN_ENV})",
    IAM_PASSWORD_ENV: f"the password of ${IAM_USER_ENV}",
    IAM_DOMAIN_ENV: f"the account (domain) name of ${IAM_USER_ENV}",
}
"""The ``HSS_SIM_*`` variables ``simulate`` reads, with what each means."""


def _project_records(value: str) -> tuple[str, int]:
    project, sep, count = value.rpartition("=")
    if not sep or not project or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected PROJECT=N, got {value!r}")
    return project, int(count)


def _iam_project(value: str) -> tuple[str, str]:
    name, sep, project_id = value.partition("=")
    if not sep or not name or not project_id or "/" in value:
        raise argparse.ArgumentTypeError(
            f"expected NAME=ID (e.g. cn-north-4=0a1b...), got {value!r}"
        )
    return name, project_id


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


def _page_cut(value: str) -> PageCut:
    parts = value.split(":")
    if not 2 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected OFFSET:LENGTH[:TIMES], got {value!r}")
    try:
        return PageCut(*(int(part) for part in parts))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid --cut-page {value!r}: {exc}") from exc


def _security_token(value: str) -> tuple[str, str]:
    access_key, sep, token = value.partition("=")
    if not sep or not access_key or not token:
        # never echo the value: it holds a secret
        raise argparse.ArgumentTypeError("expected ACCESS_KEY=SECURITY_TOKEN")
    return access_key, token


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
        "--day",
        type=int,
        default=0,
        metavar="N",
        help="serve the inventory as it is N days after day 0: each day removes, rescans and "
        "adds records (--daily-*-rate), deterministic by --seed (0)",
    )
    for name, default, what in (
        ("appear", 0.03, "new records appear"),
        ("remove", 0.02, "records go away"),
        ("rescan", 0.05, "records are scanned again (scan status, time, vulnerabilities change)"),
    ):
        serve.add_argument(
            f"--daily-{name}-rate",
            type=float,
            default=default,
            metavar="P",
            help=f"with --day: the fraction of the day before's records by which {what} "
            f"each day ({default:g})",
        )
    serve.add_argument(
        "--max-offset", type=int, default=2_000_000, help="largest accepted offset (2000000)"
    )
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added latency (0)")
    serve.add_argument("--jitter-ms", type=float, default=0.0, help="uniform ± jitter (0)")
    for name, help_text in (
        (
            "no-update-time",
            "N records of each project (seeded) have no latest_update_time: the "
            "start_/end_latest_update_time filters never match them (0)",
        ),
        (
            "duplicate-rows",
            "N records of each project (seeded) are listed twice, back to back, identical "
            "in every field; the list and total_num count both (0)",
        ),
        (
            "conflicting-rows",
            "N records of each project (seeded) are each followed by one with the same "
            "natural key and another vul_num; both listed and counted (0)",
        ),
    ):
        serve.add_argument(f"--{name}", type=int, default=0, metavar="N", help=help_text)
    serve.add_argument(
        "--shared-image-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="fraction of records showing another record's image (same image_id, digest, name, "
        "version) on another host: image_id alone is then not unique (0)",
    )

    auth = parser.add_argument_group("auth and throttling")
    auth.add_argument(
        "--token",
        action="append",
        default=[],
        help=f"accepted X-Auth-Token (repeatable; also ${TOKEN_ENV}); auth is off when no "
        "token, access key or IAM user is given",
    )
    auth.add_argument(
        "--expired-token", action="append", default=[], help="token answered with APIG.0307"
    )
    auth.add_argument(
        "--access-key",
        action="append",
        default=[],
        metavar="AK",
        help=f"accepted AK, paired in order with --secret-key (repeatable; also ${ACCESS_KEY_ENV})",
    )
    auth.add_argument(
        "--secret-key",
        action="append",
        default=[],
        metavar="SK",
        help=f"the SK of the --access-key at the same position (also ${SECRET_KEY_ENV})",
    )
    auth.add_argument(
        "--security-token",
        type=_security_token,
        action="append",
        default=[],
        metavar="AK=TOKEN",
        help=f"make AK temporary: it needs this X-Security-Token (repeatable; also "
        f"${SECURITY_TOKEN_ENV} for ${ACCESS_KEY_ENV})",
    )
    auth.add_argument(
        "--lockout-failures",
        type=int,
        default=5,
        help="failed signatures in a row that lock an AK (5; 0 = never)",
    )
    auth.add_argument(
        "--lockout-seconds", type=float, default=300.0, help="how long an AK stays locked (300)"
    )
    auth.add_argument(
        "--iam-token-ttl",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help=f"lifetime of tokens from POST /v3/auth/tokens (86400); the IAM user comes from "
        f"${IAM_USER_ENV}, ${IAM_PASSWORD_ENV} and ${IAM_DOMAIN_ENV}",
    )
    auth.add_argument(
        "--iam-project",
        type=_iam_project,
        action="append",
        default=[],
        metavar="NAME=ID",
        help="a project GET /v3/auth/projects lists; NAME is its region (cn-north-4) or a "
        "sub-project (cn-north-4_dev) (repeatable; none by default)",
    )
    auth.add_argument(
        "--iam-disabled-project",
        type=_iam_project,
        action="append",
        default=[],
        metavar="NAME=ID",
        help="a project listed with enabled: false (repeatable)",
    )
    auth.add_argument(
        "--rate", type=float, default=0.0, help="requests/s per token, AK or IAM user (0 = off)"
    )
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
    drift.add_argument(
        "--drift-moves",
        type=int,
        default=0,
        metavar="N",
        help="records moved to the front per change, keeping their identity (a list sorted "
        "by a time that changes)",
    )
    drift.add_argument("--drift-max-events", type=int, default=None, help="changes per project")
    drift.add_argument(
        "--drift-project", action="append", default=None, help="limit drift to this project"
    )

    gateway = parser.add_argument_group(
        "gateway (what a real API gateway may do; rates are probabilities per page response)"
    )
    gateway.add_argument(
        "--page-cap",
        type=int,
        default=None,
        metavar="N",
        help="serve at most N records per page whatever limit asks; limit is still validated, "
        "total_num unaffected (off)",
    )
    for name, help_text in (
        ("short-page", "a page of n >= 2 records holds only its first 1..n-1 (seeded)"),
        ("empty-page", "data_list is [] although records exist there"),
        ("missing-data-list", 'the body is {"total_num": N} without data_list'),
        (
            "swap",
            "the page's second-to-last record is replaced by the one just after the page "
            "(as if they were swapped; the list does not change)",
        ),
    ):
        gateway.add_argument(f"--{name}-rate", type=float, default=0.0, metavar="P", help=help_text)
    gateway.add_argument(
        "--total-skew",
        type=int,
        default=0,
        metavar="N",
        help="total_num reported as the true total + N, at least 0 (negative: it lags; "
        "positive: it leads) (0)",
    )
    gateway.add_argument(
        "--total-jitter",
        type=int,
        default=0,
        metavar="N",
        help="plus a seeded uniform integer in [-N, N] per page response (0)",
    )
    gateway.add_argument(
        "--cut-page",
        type=_page_cut,
        action="append",
        default=[],
        metavar="OFFSET:LENGTH[:TIMES]",
        help="the first TIMES (1) answers for the page at OFFSET (per project) hold only its "
        "first LENGTH records; total_num unaffected (repeatable, one per offset)",
    )
    gateway.add_argument(
        "--short-at-total",
        type=int,
        default=0,
        metavar="TIMES",
        help="the first TIMES answers (per project) whose records reach past the reported "
        "total_num T (offset < T < offset + served) end exactly at T (0)",
    )
    gateway.add_argument(
        "--serve-until",
        type=int,
        default=None,
        metavar="OFFSET",
        help="records at list positions >= OFFSET are never served (pages cut there, empty "
        "past it); total_num unaffected (off)",
    )


def _access_keys(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """AK -> SK and AK -> security token from the flags and the environment."""
    if len(args.access_key) != len(args.secret_key):
        raise ValueError(
            f"--access-key and --secret-key come in pairs: got {len(args.access_key)} access "
            f"key(s) and {len(args.secret_key)} secret key(s)"
        )
    pairs = list(zip(args.access_key, args.secret_key, strict=True))
    access, secret = environ.get(ACCESS_KEY_ENV), environ.get(SECRET_KEY_ENV)
    if bool(access) != bool(secret):
        raise ValueError(f"${ACCESS_KEY_ENV} and ${SECRET_KEY_ENV} go together; set both")
    if access and secret:
        pairs.append((access, secret))
    keys: dict[str, str] = {}
    for access_key, secret_key in pairs:
        if keys.get(access_key, secret_key) != secret_key:
            raise ValueError(f"access key {access_key!r} is given twice with different secrets")
        keys[access_key] = secret_key
    temporary = dict(args.security_token)
    if environ.get(SECURITY_TOKEN_ENV):
        if not access:
            raise ValueError(f"${SECURITY_TOKEN_ENV} needs ${ACCESS_KEY_ENV}")
        temporary[access] = environ[SECURITY_TOKEN_ENV]
    return keys, temporary


def _iam_users(environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    names = (IAM_USER_ENV, IAM_PASSWORD_ENV, IAM_DOMAIN_ENV)
    given = [name for name in names if environ.get(name)]
    if not given:
        return {}
    if len(given) != len(names):
        missing = [name for name in names if name not in given]
        raise ValueError(f"${', $'.join(names)} go together; missing ${', $'.join(missing)}")
    return {(environ[IAM_DOMAIN_ENV], environ[IAM_USER_ENV]): environ[IAM_PASSWORD_ENV]}


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> SimulatorConfig:
    """The configuration the flags and the ``HSS_SIM_*`` variables describe.

    Raises ``ValueError`` (or ``TypeError``) for an invalid value.
    """
    tokens = set(args.token)
    if environ.get(TOKEN_ENV):
        tokens.add(environ[TOKEN_ENV])
    access_keys, security_tokens = _access_keys(args, environ)
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
        moves=args.drift_moves,
    )
    gateway = GatewayConfig(
        page_cap=args.page_cap,
        short_page_rate=args.short_page_rate,
        empty_page_rate=args.empty_page_rate,
        missing_data_list_rate=args.missing_data_list_rate,
        swap_rate=args.swap_rate,
        total_skew=args.total_skew,
        total_jitter=args.total_jitter,
        cut_pages=tuple(args.cut_page),
        short_at_total=args.short_at_total,
        serve_until=args.serve_until,
    )
    return SimulatorConfig(
        seed=args.seed,
        records=args.records,
        project_records=dict(args.project_records),
        tokens=frozenset(tokens),
        expired_tokens=frozenset(args.expired_token),
        access_keys=access_keys,
        security_tokens=security_tokens,
        lockout_failures=args.lockout_failures,
        lockout_s=args.lockout_seconds,
        iam_users=_iam_users(environ),
        iam_token_ttl_s=args.iam_token_ttl,
        iam_projects=tuple(
            [IamProject(project_id, name) for name, project_id in args.iam_project]
            + [
                IamProject(project_id, name, enabled=False)
                for name, project_id in args.iam_disabled_project
            ]
        ),
        rate=args.rate,
        burst=args.burst,
        rate_per_minute=args.rate_per_minute,
        retry_after=args.retry_after,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        max_offset=args.max_offset,
        faults=faults,
        drift=drift,
        gateway=gateway,
        shared_image_rate=args.shared_image_rate,
        day=args.day,
        daily_appear_rate=args.daily_appear_rate,
        daily_remove_rate=args.daily_remove_rate,
        daily_rescan_rate=args.daily_rescan_rate,
        no_update_time=args.no_update_time,
        duplicate_rows=args.duplicate_rows,
        conflicting_rows=args.conflicting_rows,
    )


async def _serve(config: SimulatorConfig, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_simulator(config, host=host, port=port) as simulator:
            # What is loaded by now lives as long as the server: out of the collector's way,
            # a full collection stays a few ms and never stalls the gateway's rate check.
            gc.collect()
            gc.freeze()
            print(simulator.base_url, flush=True)
            auth = (
                f"auth by {', '.join(config.auth_methods)}" if config.auth_enabled else "auth off"
            )
            print(
                f"HSS simulator: {config.records} images per project"
                + (f" on day {config.day}" if config.day else "")
                + f", {auth}; stop with Ctrl-C",
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
