"""Medians, figures against the issue's targets, the Markdown table and the JSON file."""

from __future__ import annotations

import itertools
import math
import os
import platform
import statistics
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .programs import PAGE_SIZE, Run
from .suite import (
    TARGET_ACCOUNT,
    Collected,
    account_series,
    split_series,
    split_variants,
    throttle_series,
)

__all__ = ["Figure", "Together", "figures", "machine", "render", "split_rounds", "to_json"]

MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Figure:
    case: str
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    """None: informational, no target."""


@dataclass(frozen=True, slots=True)
class Together:
    """The processes of one round, started together: their wall is the last one's, their
    sync the longest, their requests and 429s summed."""

    wall_s: float
    sync_s: float
    requests: float
    throttled: float

    @classmethod
    def of(cls, runs: tuple[Run, ...]) -> Together:
        return cls(
            wall_s=max(r.measured.wall_s for r in runs),
            sync_s=max(r.duration_s for r in runs),
            requests=sum(_metric(r, "requests") for r in runs),
            throttled=sum(_metric(r, "throttled") for r in runs),
        )

    @property
    def throttled_pct(self) -> float:
        return self.throttled / self.requests * 100 if self.requests else math.nan


def _processes(collected: Collected, series: str) -> list[list[Run]]:
    """The runs of ``series/p0``, ``series/p1``, ... (one list per process)."""
    names = itertools.takewhile(
        collected.runs.__contains__, (f"{series}/p{i}" for i in itertools.count())
    )
    return [collected.runs[name] for name in names]


def _together(processes: list[list[Run]]) -> list[Together]:
    """Round by round, the processes of that round together."""
    return [Together.of(runs) for runs in zip(*processes, strict=True)]


def _median(runs: list[Run], metric: str) -> float:
    values = [_metric(run, metric) for run in runs]
    return statistics.median(values)


def _metric(run: Run, metric: str) -> float:
    m = run.measured
    values = {
        "wall_s": m.wall_s,
        "sync_s": run.duration_s,
        "cpu_s": m.cpu_s,
        "user_s": m.user_s,
        "sys_s": m.sys_s,
        "rss_mb": m.max_rss_bytes / MB,
        "sim_cpu_s": run.sim_cpu_s,
        "cpu_us_per_record": m.cpu_s / run.records * 1e6,
        "sim_cpu_us_per_record": run.sim_cpu_s / run.records * 1e6,
        "requests": float(run.report.get("requests", math.nan)),
        "throttled": float(run.report.get("throttled", math.nan)),
    }
    return values[metric]


def _paired(a: list[Run], b: list[Run], metric: str) -> float:
    """Median over rounds of b/a, each ratio from runs of the same round."""
    return statistics.median(
        _metric(y, metric) / _metric(x, metric) for x, y in zip(a, b, strict=True)
    )


def _arrow_parquet_us(transform: dict[str, Any], records: int) -> float:
    """The floor's Arrow and Parquet work alone, per record: floor minus its orjson parse."""
    return (transform["floor"]["cpu_s"] - transform["orjson"]["cpu_s"]) / records * 1e6


def cpu_pair_ratios(collected: Collected) -> list[float]:
    """Each (connector, minimal client) pair's CPU per record, the connector's over the
    minimal client's plus its round's floor Arrow and Parquet work; empty when the rounds
    did not each time their floor."""
    rounds, pairs = collected.transform_rounds, collected.cpu_pairs
    if not pairs or len(rounds) <= max(pair.round for pair in pairs):
        return []
    records = rounds[0]["floor"]["rows"]
    return [
        _metric(pair.connector, "cpu_us_per_record")
        / (
            _metric(pair.minimal, "cpu_us_per_record")
            + _arrow_parquet_us(rounds[pair.round], records)
        )
        for pair in pairs
    ]


def figures(collected: Collected) -> list[Figure]:
    s = collected.settings
    runs = collected.runs
    out: list[Figure] = []
    pages = math.ceil(s.records / PAGE_SIZE)

    rate = runs.get("connector/rate")
    if rate:
        limit = pages / s.rate
        out += [
            Figure("rate", f"physical limit pages/R = {pages}/{s.rate:g}", limit, "s"),
            Figure("rate", "wall, process (spawn to exit)", _median(rate, "wall_s"), "s"),
            Figure("rate", "sync duration (run report)", _median(rate, "sync_s"), "s"),
        ]
        wall_ratio = _median(rate, "wall_s") / limit
        out.append(
            Figure("rate", "wall / (pages/R)", wall_ratio, "x", "<= 1.05", wall_ratio <= 1.05)
        )
        sync_ratio = _median(rate, "sync_s") / limit
        out.append(
            Figure("rate", "sync / (pages/R)", sync_ratio, "x", "<= 1.05", sync_ratio <= 1.05)
        )
        requests, throttled = _median(rate, "requests"), _median(rate, "throttled")
        share = throttled / requests * 100 if requests else math.nan
        out += [
            Figure("rate", "requests sent", requests, ""),
            Figure("rate", "throttled (429)", throttled, ""),
            Figure("rate", "throttled / requests", share, "%", "<= 1%", share <= 1.0),
        ]

    out += _account(collected)
    out += _throttle(collected)
    out += _split(collected)

    latency = runs.get("connector/latency")
    transform = collected.transform
    if latency and {"latency", "peers", "cpu", "memory"} & set(collected.cases):
        wall = _median(latency, "wall_s")
        out += [
            Figure("latency", "wall, process", wall, "s"),
            Figure("latency", "sync duration (run report)", _median(latency, "sync_s"), "s"),
            Figure("latency", "records/s (process wall)", s.records / wall, "rec/s"),
        ]
    if latency and transform and "latency" in collected.cases:
        floor = pages * s.latency_ms / 1000 / s.concurrency
        alone = transform["connector"]["wall_s"]
        bound = max(floor, alone)
        out += [
            Figure("latency", f"pages x latency / concurrency ({s.concurrency})", floor, "s"),
            Figure("latency", "transform alone, same records", alone, "s"),
        ]
        for label, metric in (("wall", "wall_s"), ("sync", "sync_s")):
            ratio = _median(latency, metric) / bound
            out.append(
                Figure("latency", f"{label} / max(those two)", ratio, "x", "<= 1.2", ratio <= 1.2)
            )
        minimal = runs.get("minimal/latency")
        if minimal:
            out.append(
                Figure(
                    "latency",
                    "yardstick: minimal aiohttp client wall / max(those two)",
                    _median(minimal, "wall_s") / bound,
                    "x",
                )
            )
    dlt, naive = runs.get("dlt/latency"), runs.get("naive/latency")
    if latency and dlt:
        speedup = _paired(latency, dlt, "wall_s")
        out.append(
            Figure("latency", "dlt wall / connector wall", speedup, "x", ">= 10", speedup >= 10)
        )
    if latency and naive:
        out.append(
            Figure("latency", "naive wall / connector wall", _paired(latency, naive, "wall_s"), "x")
        )

    if latency and transform and "concurrency" in collected.cases:
        out += _sweep(collected, pages, transform["connector"]["wall_s"], dlt)

    if latency and transform and "cpu" in collected.cases:
        n = transform["floor"]["rows"]
        per = {k: transform[k]["cpu_s"] / n * 1e6 for k in ("orjson", "floor", "connector")}
        e2e = _median(latency, "cpu_us_per_record")
        out += [
            Figure("cpu", "end to end, connector process (user+sys)", e2e, "us/rec"),
            Figure(
                "cpu",
                "  of which user / sys",
                _median(latency, "user_s") / _median(latency, "cpu_s") * 100,
                "% user",
            ),
            Figure("cpu", "floor: orjson parse of the same bodies", per["orjson"], "us/rec"),
            Figure("cpu", "floor: orjson + Arrow + zstd Parquet", per["floor"], "us/rec"),
            Figure(
                "cpu",
                "connector transform alone (parse, check, Arrow, Parquet)",
                per["connector"],
                "us/rec",
            ),
            Figure("cpu", "transform alone / floor", per["connector"] / per["floor"], "x"),
        ]
        out.append(Figure("cpu", "end to end / floor (target retired)", e2e / per["floor"], "x"))
        minimal = runs.get("minimal/latency")
        if minimal:
            least = _median(minimal, "cpu_us_per_record") + _arrow_parquet_us(transform, n)
            ratios = cpu_pair_ratios(collected)
            paired = bool(ratios)
            ratio = statistics.median(ratios) if paired else e2e / least
            out += [
                Figure(
                    "cpu",
                    "yardstick: minimal aiohttp client (download + orjson, nothing kept)",
                    _median(minimal, "cpu_us_per_record"),
                    "us/rec",
                ),
                Figure(
                    "cpu",
                    "  + the floor's Arrow and Parquet, measured alone = least, added up",
                    least,
                    "us/rec",
                ),
                Figure("cpu", "  that least / floor", least / per["floor"], "x"),
                Figure(
                    "cpu",
                    "connector end to end / least added up"
                    + (" (paired by round)" if paired else ""),
                    ratio,
                    "x",
                    "<= 1.25",
                    ratio <= 1.25,
                ),
            ]
            if paired:
                out += [
                    Figure("cpu", "  pairs measured (the median's sample)", len(ratios), ""),
                    Figure("cpu", "  lowest pair", min(ratios), "x"),
                    Figure("cpu", "  highest pair", max(ratios), "x"),
                ]
        written = runs.get("minimal-file/latency")
        if written:
            ratio = _paired(written, latency, "cpu_us_per_record")
            out += [
                Figure(
                    "cpu",
                    "yardstick: minimal client writing the floor's file (same run, same start)",
                    _median(written, "cpu_us_per_record"),
                    "us/rec",
                ),
                Figure(
                    "cpu",
                    "connector end to end / that client (paired by round)",
                    ratio,
                    "x",
                    "<= 1.25",
                    ratio <= 1.25,
                ),
            ]
        large = runs.get("connector/large")
        if large:
            big = _median(large, "cpu_us_per_record")
            out.append(Figure("cpu", f"end to end at {s.large_records:,} records", big, "us/rec"))
            ratio = big / per["floor"]
            out.append(
                Figure(
                    "cpu",
                    f"end to end at {s.large_records:,} / floor",
                    ratio,
                    "x",
                    "<= 1.3",
                    ratio <= 1.3,
                )
            )
            marginal = (
                (_median(large, "cpu_s") - _median(latency, "cpu_s"))
                / (s.large_records - s.records)
                * 1e6
            )
            out.append(Figure("cpu", "marginal (large - base) / records", marginal, "us/rec"))
        if dlt:
            ratio = _paired(latency, dlt, "cpu_us_per_record")
            out.append(
                Figure(
                    "cpu", "dlt CPU / connector CPU per record", ratio, "x", ">= 15", ratio >= 15
                )
            )
        if naive:
            out.append(
                Figure(
                    "cpu",
                    "naive CPU / connector CPU per record",
                    _paired(latency, naive, "cpu_us_per_record"),
                    "x",
                )
            )
        out.append(
            Figure(
                "cpu",
                "simulator CPU, same runs (other process)",
                _median(latency, "sim_cpu_us_per_record"),
                "us/rec",
            )
        )

    large = runs.get("connector/large")
    if latency and large and "memory" in collected.cases:
        small_rss, big_rss = _median(latency, "rss_mb"), _median(large, "rss_mb")
        ratio = big_rss / small_rss
        out += [
            Figure("memory", f"peak RSS at {s.records:,} records", small_rss, "MB"),
            Figure(
                "memory",
                f"peak RSS at {s.large_records:,} records",
                big_rss,
                "MB",
                "< 250 MB",
                big_rss < 250,
            ),
            Figure("memory", "ratio", ratio, "x", "<= 1.2", ratio <= 1.2),
        ]
        out.append(
            Figure("memory", f"wall at {s.large_records:,} records", _median(large, "wall_s"), "s")
        )
    ours, duck = runs.get("connector/diff"), runs.get("duckdb/diff")
    if ours and duck:
        images = ours[0].records
        out += [
            Figure(
                "diff",
                f"hss-images diff, {images:,} images a side: wall",
                _median(ours, "wall_s"),
                "s",
            ),
            Figure("diff", "hss-images diff: peak RSS", _median(ours, "rss_mb"), "MB"),
            Figure("diff", "DuckDB, the manual's SQL: wall", _median(duck, "wall_s"), "s"),
            Figure("diff", "DuckDB, the manual's SQL: peak RSS", _median(duck, "rss_mb"), "MB"),
            Figure("diff", "rows (appeared + removed + changed)", float(ours[0].rows), ""),
        ]
    for series, label in (("naive/latency", "naive"), ("dlt/latency", "dlt")):
        peer = runs.get(series)
        if peer:
            out += [
                Figure("peers", f"{label}: wall", _median(peer, "wall_s"), "s"),
                Figure("peers", f"{label}: CPU", _median(peer, "cpu_us_per_record"), "us/rec"),
                Figure("peers", f"{label}: peak RSS", _median(peer, "rss_mb"), "MB"),
            ]
    return out


def _account(collected: Collected) -> list[Figure]:
    """Many projects on one credential: sync duration against sum(ceil(N/200)) / rate.

    The targets (1.10x, 1% throttled) are on 60 projects of 3,000; the rest is the curve.
    Beside each run, the naive loop and dlt over the same projects (process wall, since
    they have no run report; the connector's wall is paired with theirs round by round)."""
    s = collected.settings
    out: list[Figure] = []
    for count, size in s.account:
        limit = count * math.ceil(size / PAGE_SIZE) / s.rate
        out += _account_run(collected, count, size, limit, s.account_burst)
        if (count, size) == TARGET_ACCOUNT and s.account_compare_burst:
            out += _account_run(collected, count, size, limit, s.account_compare_burst)
        connector = collected.runs.get(account_series(count, size))
        for name in ("naive", "dlt"):
            peer = collected.runs.get(account_series(count, size).replace("connector/", f"{name}/"))
            if not peer:
                continue
            label = f"{count} x {size:,}: {name}"
            wall = _median(peer, "wall_s")
            out += [
                Figure("account", f"{label}: wall, process", wall, "s"),
                Figure("account", f"{label}: wall / limit", wall / limit, "x"),
            ]
            if connector:
                out.append(
                    Figure(
                        "account",
                        f"{label}: wall / connector wall",
                        _paired(connector, peer, "wall_s"),
                        "x",
                    )
                )
    return out


def _throttle(collected: Collected) -> list[Figure]:
    """A --rate above the gateway's: the processes of a round together against the limit
    (all their pages / the gateway's rate). Their wall is the last one's (they start
    together), their sync the longest; 429s and requests are summed. Each process's rate
    settled is where its run ended (one that ends last has found what the others left)."""
    s = collected.settings
    out: list[Figure] = []
    cases = [(over, s.throttle_rate * over, s.throttle_rate, "1") for over in s.throttle_over]
    shared = (None, None, s.throttle_shared_rate, str(s.throttle_shared_bucket))
    for over, rate, gateway, bucket in [*cases, shared]:
        processes = _processes(collected, throttle_series(over))
        if not processes:
            continue
        rounds = _together(processes)
        pages = len(processes) * math.ceil(s.throttle_records / PAGE_SIZE)
        limit = pages / gateway
        who = f"--rate {rate:g}" if rate else f"{len(processes)} processes, default --rate"
        label = f"{who} vs gateway {gateway:g}/s (bucket {bucket})"
        wall = statistics.median(r.wall_s for r in rounds)
        sync = statistics.median(r.sync_s for r in rounds)
        share = statistics.median(r.throttled_pct for r in rounds)
        settled = [
            statistics.median(float(r.report.get("rate_settled", math.nan)) for r in runs)
            for runs in processes
        ]
        out += [
            Figure("throttle", f"{label}: limit pages/R = {pages}/{gateway:g}", limit, "s"),
            Figure("throttle", f"{label}: wall, process", wall, "s"),
            Figure("throttle", f"{label}: sync duration (run report)", sync, "s"),
            Figure(
                "throttle",
                f"{label}: wall / limit",
                wall / limit,
                "x",
                "<= 1.25",
                wall <= 1.25 * limit,
            ),
            Figure(
                "throttle",
                f"{label}: sync / limit",
                sync / limit,
                "x",
                "<= 1.25",
                sync <= 1.25 * limit,
            ),
            Figure(
                "throttle",
                f"{label}: requests sent",
                statistics.median(r.requests for r in rounds),
                "",
            ),
            Figure("throttle", f"{label}: throttled / requests", share, "%", "<= 15%", share <= 15),
        ]
        out += [
            Figure(
                "throttle",
                f"{label}: rate settled" + (f", process {i}" if len(settled) > 1 else ""),
                value,
                "/s",
            )
            for i, value in enumerate(settled)
        ]
    return out


def split_rounds(collected: Collected) -> dict[str, list[dict[str, float]]]:
    """The split case round by round, for each variant: each way's processes together
    (``Together``), and their wall and sync over the limit, all pages / the gateway's rate."""
    s = collected.settings
    out: dict[str, list[dict[str, float]]] = {}
    for variant, sizes in split_variants(s).items():
        limit = _pages(sizes) / s.throttle_shared_rate
        for series in (split_series(len(sizes), variant), split_series(1, variant)):
            processes = _processes(collected, series)
            if processes:
                out[series] = [
                    {
                        **asdict(r),
                        "throttled_pct": r.throttled_pct,
                        "limit_s": limit,
                        "wall_ratio": r.wall_s / limit,
                        "sync_ratio": r.sync_s / limit,
                    }
                    for r in _together(processes)
                ]
    return out


def _pages(sizes: tuple[int, ...]) -> int:
    return sum(math.ceil(records / PAGE_SIZE) for records in sizes)


def _split(collected: Collected) -> list[Figure]:
    """One credential's budget split between processes against one process at all of it,
    for each variant (the uneven one's figures named after its projects' sizes): the
    throttle case's definitions (``Together``), medians over rounds, and the split's sync
    over the one process's, paired by round. Informational: no target."""
    s = collected.settings
    gateway = s.throttle_shared_rate
    rounds = split_rounds(collected)
    out: list[Figure] = []
    for variant, sizes in split_variants(s).items():
        n = len(sizes)
        split, one = rounds.get(split_series(n, variant)), rounds.get(split_series(1, variant))
        if not (split or one):
            continue
        prefix = f"{variant} {'/'.join(f'{r:,}' for r in sizes)}: " if variant else ""
        pages = _pages(sizes)
        gate = f"{prefix}gateway {gateway:g}/s (bucket {s.throttle_shared_bucket})"
        out.append(
            Figure("split", f"{gate}: limit pages/R = {pages}/{gateway:g}", pages / gateway, "s")
        )
        labels = {
            f"{prefix}{n} processes, one project each, --rate {gateway / n:g}": split,
            f"{prefix}1 process, {n} projects, --rate {gateway:g}": one,
        }
        for label, each in labels.items():
            if not each:
                continue
            out += [
                Figure("split", f"{label}: {name}", statistics.median(r[key] for r in each), unit)
                for name, key, unit in (
                    ("wall, process", "wall_s", "s"),
                    ("sync duration (run report)", "sync_s", "s"),
                    ("wall / limit", "wall_ratio", "x"),
                    ("sync / limit", "sync_ratio", "x"),
                    ("requests sent", "requests", ""),
                    ("throttled / requests", "throttled_pct", "%"),
                )
            ]
        if split and one:
            ratio = statistics.median(
                a["sync_s"] / b["sync_s"] for a, b in zip(split, one, strict=True)
            )
            name = f"{prefix}split sync / one process's sync (paired by round)"
            out.append(Figure("split", name, ratio, "x"))
    return out


def _account_run(
    collected: Collected, count: int, size: int, limit: float, burst: float | None
) -> list[Figure]:
    s = collected.settings
    out: list[Figure] = []
    runs = collected.runs.get(
        account_series(count, size, burst if burst != s.account_burst else None)
    )
    if not runs:
        return out
    sync = _median(runs, "sync_s")
    ratio = sync / limit
    requests, throttled = _median(runs, "requests"), _median(runs, "throttled")
    share = throttled / requests * 100 if requests else math.nan
    label = f"{count} x {size:,}, " + (f"--burst {burst:g}" if burst else "default --burst")
    targeted = (count, size) == TARGET_ACCOUNT
    out += [
        Figure("account", f"{label}: limit sum(ceil(N/200))/R", limit, "s"),
        Figure("account", f"{label}: sync duration (run report)", sync, "s"),
        Figure("account", f"{label}: wall, process", _median(runs, "wall_s"), "s"),
        Figure(
            "account",
            f"{label}: sync / limit",
            ratio,
            "x",
            "<= 1.10" if targeted else "",
            ratio <= 1.10 if targeted else None,
        ),
        Figure("account", f"{label}: requests sent", requests, ""),
        Figure(
            "account",
            f"{label}: throttled / requests",
            share,
            "%",
            "<= 1%" if targeted else "",
            share <= 1.0 if targeted else None,
        ),
        Figure(
            "account",
            f"{label}: rate settled",
            float(statistics.median(r.report.get("rate_settled", math.nan) for r in runs)),
            "/s",
        ),
    ]
    return out


def _sweep(
    collected: Collected, pages: int, transform_s: float, dlt: list[Run] | None
) -> list[Figure]:
    """The latency case at each --concurrency: the bound, the ratio to it, dlt's wall over ours.

    Informational (no target flag): they show at which concurrency each latency target holds.
    """
    s = collected.settings
    out: list[Figure] = []
    for concurrency in sorted({*s.sweep, s.concurrency}):
        name = "connector/latency" if concurrency == s.concurrency else None
        runs = collected.runs.get(name or f"connector/latency-c{concurrency}")
        if not runs:
            continue
        bound = max(pages * s.latency_ms / 1000 / concurrency, transform_s)
        wall = _median(runs, "wall_s")
        label = f"--concurrency {concurrency}"
        out += [
            Figure("concurrency", f"{label}: wall", wall, "s"),
            Figure(
                "concurrency",
                f"{label}: wall / max(pages x latency / c, transform)",
                wall / bound,
                "x",
            ),
        ]
        if dlt:
            out.append(
                Figure(
                    "concurrency",
                    f"{label}: dlt wall / connector wall",
                    _paired(runs, dlt, "wall_s"),
                    "x",
                )
            )
    return out


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.2f}%"
    if unit == "% user":
        return f"{value:.0f}% user"
    if unit == "rec/s":
        return f"{value:,.0f} rec/s"
    if unit == "":
        return f"{value:,.0f}"
    return f"{value:,.2f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def render(collected: Collected, figs: list[Figure]) -> str:
    """The results as Markdown: the figures with their targets, then every series."""
    lines = ["| case | figure | value | target | met |", "|---|---|---|---|---|"]
    for f in figs:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| {f.case} | {f.name} | {_fmt(f.value, f.unit)} | {f.target} | {met} |")
    lines += [
        "",
        "| series | runs | records | wall s | sync s | CPU s | CPU us/rec | peak RSS MB "
        "| simulator CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for series, runs in collected.runs.items():
        cells = [
            series,
            str(len(runs)),
            f"{runs[0].records:,}",
            f"{_median(runs, 'wall_s'):.2f}",
            f"{_median(runs, 'sync_s'):.2f}" if runs[0].report else "",
            f"{_median(runs, 'cpu_s'):.2f}",
            f"{_median(runs, 'cpu_us_per_record'):.1f}",
            f"{_median(runs, 'rss_mb'):.0f}",
            f"{_median(runs, 'sim_cpu_s'):.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for name, why in collected.skipped.items():
        lines.append(f"\nskipped {name}: {why}")
    return "\n".join(lines)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory_gib = round(total_kib / 2**20, 1)
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "packages": {
            p: _version(p)
            for p in ("hss-image-connector", "aiohttp", "orjson", "pyarrow", "polars", "dlt")
        },
    }


def to_json(collected: Collected, figs: list[Figure], info: dict[str, Any]) -> dict[str, Any]:
    series: dict[str, Any] = {}
    for name, runs in collected.runs.items():
        series[name] = {
            "runs": [
                {
                    "records": run.records,
                    "rows_written": run.rows,
                    "wall_s": run.measured.wall_s,
                    "sync_s": run.duration_s,
                    "user_s": run.measured.user_s,
                    "sys_s": run.measured.sys_s,
                    "max_rss_bytes": run.measured.max_rss_bytes,
                    "simulator_cpu_s": run.sim_cpu_s,
                    "requests": run.report.get("requests"),
                    "throttled": run.report.get("throttled"),
                }
                for run in runs
            ],
        }
    return {
        "machine": info,
        "settings": asdict(collected.settings),
        "cases": list(collected.cases),
        "figures": [asdict(f) for f in figs],
        "series": series,
        "transform": collected.transform,
        "transform_rounds": collected.transform_rounds,
        "split_rounds": split_rounds(collected),
        "cpu_pairs": [
            {
                "round": pair.round,
                "connector_cpu_s": pair.connector.measured.cpu_s,
                "minimal_cpu_s": pair.minimal.measured.cpu_s,
                "ratio": ratio,
            }
            for pair, ratio in zip(
                collected.cpu_pairs,
                cpu_pair_ratios(collected) or [None] * len(collected.cpu_pairs),
                strict=True,
            )
        ],
        "skipped": collected.skipped,
    }
