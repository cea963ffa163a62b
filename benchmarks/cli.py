"""``python -m benchmarks``: run the cases, print the results table, write it as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from .results import figures, machine, render, to_json
from .suite import CASES, Settings, run_suite

__all__ = ["main"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def _cases(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown case {', '.join(unknown)}; known: {', '.join(CASES)}"
        )
    return names


def _account(text: str) -> tuple[tuple[int, int], ...]:
    runs = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        count, sep, size = item.partition("x")
        if not (sep and count.isdigit() and size.isdigit() and int(count) > 0):
            raise argparse.ArgumentTypeError(f"{item!r} is not PROJECTSxRECORDS, e.g. 60x3000")
        runs.append((int(count), int(size)))
    return tuple(runs)


def _pair(text: str) -> tuple[float, float]:
    first, sep, second = text.partition(",")
    try:
        pair = (float(first), float(second))
    except ValueError:
        pair = None
    if not sep or pair is None or pair[0] <= 0 or pair[1] < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not two numbers A,B (A > 0), e.g. 50,5")
    return pair


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark hss-images sync against the embedded simulator and two peers.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20,000 records (200,000 for the memory case), one round: about a minute.",
    )
    parser.add_argument(
        "--cases",
        type=_cases,
        default=CASES,
        metavar="A,B",
        help=f"Cases to run, comma-separated (default all: {','.join(CASES)}).",
    )
    parser.add_argument("--runs", type=int, metavar="N", help="Rounds; each figure is the median.")
    parser.add_argument(
        "--records",
        type=int,
        metavar="N",
        help="Base size (default 100,000; the memory case also runs 10x this, the throttle "
        "and split cases at most 20,000 per project, the split case's uneven projects scaled "
        "alike).",
    )
    parser.add_argument(
        "--concurrency", type=int, metavar="N", help="The connector's --concurrency (16)."
    )
    parser.add_argument(
        "--account",
        type=_account,
        metavar="PxN,...",
        help="The account case's runs: P projects of N records each on one credential "
        "(default 1x3000,10x3000,60x3000,200x500; 60x3000 carries the targets).",
    )
    parser.add_argument(
        "--account-burst",
        type=float,
        metavar="B",
        help="The connector's --burst in the account case (default: its own default; 60x3000 "
        "also runs at 1).",
    )
    parser.add_argument(
        "--gateway",
        type=_pair,
        metavar="R,B",
        help="The simulated gateway of the rate and account cases: R requests/s per "
        "credential with a bucket of B (default 50,5); the connector runs at --rate R.",
    )
    parser.add_argument(
        "--gateway-latency",
        type=_pair,
        metavar="MS,J",
        help="Their response time: MS milliseconds, +-J uniform (default 100,20).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="FILE",
        help="Write the results as JSON here (default benchmarks/results/latest.json).",
    )
    parser.add_argument(
        "--check", action="store_true", help="Exit with 1 when a target is not met."
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.quick() if args.quick else Settings()
    changes: dict[str, Any] = {}
    if args.runs is not None:
        changes["runs"] = max(1, args.runs)
    if args.records is not None:
        changes["records"] = args.records
        changes["large_records"] = 10 * args.records
        changes["throttle_records"] = min(args.records, settings.throttle_records)
        changes["split_uneven_records"] = tuple(  # the same shares of the even total
            max(1, n * changes["throttle_records"] // settings.throttle_records)
            for n in settings.split_uneven_records
        )
    if args.concurrency is not None:
        changes["concurrency"] = args.concurrency
    if args.account:
        changes["account"] = args.account
    if args.account_burst is not None:
        changes["account_burst"] = max(1.0, args.account_burst)
    if args.gateway is not None:
        changes["rate"], burst = args.gateway
        changes["rate_burst"] = max(1, round(burst))
    if args.gateway_latency is not None:
        changes["rate_latency_ms"], changes["rate_jitter_ms"] = args.gateway_latency
    return dataclasses.replace(settings, **changes)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    started = time.monotonic()
    info = machine()
    collected = run_suite(settings, args.cases)
    info["load_average_after"] = machine()["load_average"]
    info["suite_s"] = round(time.monotonic() - started, 1)
    figs = figures(collected)
    print(render(collected, figs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(to_json(collected, figs, info), option=orjson.OPT_INDENT_2))
    print(f"\nresults written to {args.out} ({info['suite_s']} s)", file=sys.stderr)
    if args.check and any(f.met is False for f in figs):
        return 1
    return 0
