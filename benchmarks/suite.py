"""The benchmark cases: which simulators to start and which programs to run, in what order.

    rate     simulator limited to R requests/s (small bucket), latency with jitter;
             the connector at --rate R
    latency  no rate limit, fixed latency; the connector (and the peers, same rounds)
    cpu      the connector's CPU per record end to end against the minimal client's plus
             the floor's Arrow and Parquet work: in every round Settings.cpu_pairs
             (connector, minimal client) pairs back to back (the latency case's first),
             and the transform alone against its floor (benchmarks.transform, same
             bodies), so each pair adds up its own round's floor
    memory   the connector's peak RSS at the base size (the latency runs) and at 10x
    peers    dlt rest_api and a naive sequential aiohttp loop, in the latency rounds
    account  many projects on one credential (simulator limited to R requests/s, small
             bucket, latency with jitter), the connector at --rate R over all of them:
             1, 10 and 60 projects of 3,000 records and 200 of 500 (Settings.account);
             at 60 x 3,000 also at --burst 1; the naive loop and dlt (one resource per
             project) over the same projects, same rounds
    throttle a --rate above the gateway's (issue 23): a gateway at Settings.throttle_rate
             requests/s with a bucket of 1 (latency and jitter as the rate case), the
             connector at 4x and 2x that rate; then Settings.throttle_processes connector
             processes at once on one credential, at the default --rate, each reading its
             own project, against a gateway at throttle_shared_rate (bucket
             throttle_shared_bucket)
    split    what splitting one credential's budget between processes costs, on the
             throttle case's shared gateway: N connector processes started together,
             one project each at --rate gateway/N, against one process reading all of
             those projects at --rate gateway; the order turns every round. Two
             variants (split_variants): Settings.throttle_processes projects of
             throttle_records each, and projects of Settings.split_uneven_records
             (the same total), where a split's share idles once its project is read
    concurrency
             the latency case again at other --concurrency values (Settings.sweep): where
             the latency-bound ratio and the speed-up over dlt each hold
    diff     hss-images diff of two snapshots of Settings.large_records images each
             (benchmarks/diff.py), beside DuckDB running the manual's SQL of the same
             diff: wall and peak RSS of each, their rows checked equal

With the latency and cpu cases, each round also runs a minimal aiohttp client (download and
parse, nothing kept) at the connector's concurrency: a yardstick for what any aiohttp client
can reach on this machine and server, not a peer.

Runs are interleaved round by round (connector, naive, dlt, connector at 10x), so that
whatever else the machine does falls on every program alike; each figure is the median
over the rounds.
"""

from __future__ import annotations

import functools
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import diff as diff_bench
from . import programs
from .procs import Measured, Simulator, child_env, measure, python_command

__all__ = [
    "CASES",
    "TARGET_ACCOUNT",
    "Collected",
    "CpuPair",
    "Settings",
    "account_projects",
    "account_series",
    "run_suite",
    "split_projects",
    "split_series",
    "split_variants",
    "throttle_series",
]

CASES = (
    "rate",
    "account",
    "throttle",
    "split",
    "latency",
    "cpu",
    "memory",
    "peers",
    "concurrency",
    "diff",
)
WARMUP_PROJECT, WARMUP_RECORDS = "warmup", 400
TARGET_ACCOUNT = (60, 3_000)


@dataclass(frozen=True, slots=True)
class Settings:
    records: int = 100_000
    large_records: int = 1_000_000
    runs: int = 3
    concurrency: int = 16
    rate: float = 50.0
    rate_burst: int = 5
    rate_latency_ms: float = 100.0
    rate_jitter_ms: float = 20.0
    latency_ms: float = 50.0
    sweep: tuple[int, ...] = (4, 8, 32)
    transform_reps: int = 3
    """Repetitions of the transform micro-benchmark, in each round of the cpu case."""
    cpu_pairs: int = 3
    """(connector, minimal client) runs back to back per round in the cpu case, the
    latency case's pair first: one pair's CPU ratio moved 1.07x-1.58x between rounds on a
    2-vCPU VM, more than any change measured, so the figure is the median of them all."""
    account: tuple[tuple[int, int], ...] = ((1, 3_000), (10, 3_000), (60, 3_000), (200, 500))
    """(projects, records each) of the account case, on one credential; (60, 3,000) has
    the targets."""
    account_burst: float | None = None
    """The connector's --burst in the account case, None: its default (the simulator's
    bucket is rate_burst)."""
    account_compare_burst: float = 1
    """The target run again at this --burst, for comparison (0: not run)."""
    throttle_records: int = 20_000
    """Records per connector process in the throttle case."""
    throttle_rate: float = 5.0
    """The gateway of the throttle case's single runs (bucket 1); the connector runs at
    each of ``throttle_over`` times it."""
    throttle_over: tuple[float, ...] = (4.0, 2.0)
    throttle_processes: int = 4
    throttle_shared_rate: float = 20.0
    throttle_shared_bucket: int = 5
    """The gateway of the processes sharing a credential: at bucket 1 uncoordinated
    senders collide on the one token however low they go (benchmarks/README.md)."""
    split_uneven_records: tuple[int, ...] = (50_000, 20_000, 5_000, 5_000)
    """Records per project of the split case's uneven variant, one process each: the
    even variant's total (throttle_processes x throttle_records), unevenly."""

    @classmethod
    def quick(cls) -> Settings:
        return cls(records=20_000, large_records=200_000, runs=1)

    @property
    def timeout_s(self) -> float:
        return 120 + self.large_records / 1_000


@dataclass(slots=True)
class Collected:
    """Everything measured, by series name (``connector/latency`` etc.)."""

    settings: Settings
    cases: tuple[str, ...]
    runs: dict[str, list[programs.Run]] = field(default_factory=dict)
    transform: dict[str, Any] = field(default_factory=dict)
    transform_rounds: list[dict[str, Any]] = field(default_factory=list)
    """The cpu case times the transform and its floor in every round, right after the
    yardsticks (``transform`` is then the median over rounds): the added-up yardstick is
    paired by round like the others, not one floor against every round."""
    cpu_pairs: list[CpuPair] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, series: str, run: programs.Run) -> None:
        self.runs.setdefault(series, []).append(run)

    def last(self, series: str) -> programs.Run:
        return self.runs[series][-1]


@dataclass(frozen=True, slots=True)
class CpuPair:
    """The connector and the minimal client, run back to back in round ``round``."""

    round: int
    connector: programs.Run
    minimal: programs.Run


Log = Callable[[str], None]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_suite(settings: Settings, cases: Iterable[str], log: Log = _log) -> Collected:
    """Run the selected cases; every program's rows are checked against the simulator."""
    wanted = tuple(c for c in CASES if c in set(cases))
    work = Path(tempfile.mkdtemp(prefix="hss-bench-"))
    bench = _Bench(settings, Collected(settings, wanted), work, log)
    try:
        bench.warm_up()
        if "rate" in wanted:
            bench.rate_bound()
        if "account" in wanted:
            bench.account()
        if "throttle" in wanted:
            bench.throttle()
        if "split" in wanted:
            bench.split()
        if {"latency", "cpu", "memory", "peers"} & set(wanted):
            bench.latency_bound()
        if "diff" in wanted:
            bench.diff()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bench.collected


class _Bench:
    def __init__(self, settings: Settings, collected: Collected, work: Path, log: Log) -> None:
        self.settings = settings
        self.collected = collected
        self.work = work
        self.log = log
        self.env = child_env(work / "pycache")
        self._dlt_warm = False

    def warm_up(self) -> None:
        """Fill the bytecode cache, so that no measured run compiles modules."""
        self.log("warming up (bytecode cache)")
        modules = (
            "connector.cli, connector.job.pipeline, connector.simulator.cli, benchmarks.transform"
        )
        if programs.dlt_available():
            modules += ", dlt, dlt.sources.rest_api"
        command = python_command("-c", f"import {modules}")
        measure(command, env=self.env, cwd=self.work, timeout_s=300).check("warm-up")

    def diff(self) -> None:
        """``connector.diff`` and the manual's DuckDB SQL over the same two snapshots, each
        in a process of its own, interleaved round by round; their rows must agree."""
        images = self.settings.large_records
        lake = self.work / "diff-lake"
        root = str(Path(__file__).resolve().parents[1])  # benchmarks.diff, tests.diff_sql
        env = {**self.env, "PYTHONPATH": root}
        self.log(f"diff: building two snapshots of {images:,} images")
        build = python_command("-m", "benchmarks.diff", "build", str(lake), str(images))
        measure(build, env=env, cwd=self.work, timeout_s=self.settings.timeout_s).check(
            "building the diff lake"
        )
        dates = (diff_bench.FROM.isoformat(), diff_bench.TO.isoformat())
        for round_ in range(self.settings.runs):
            outputs = {}
            for program in ("connector", "duckdb"):
                self.log(f"diff, round {round_ + 1}/{self.settings.runs}: {program}")
                out = self.work / f"diff-{program}.parquet"
                out.unlink(missing_ok=True)
                command = python_command(
                    "-m", "benchmarks.diff", program, str(lake), *dates, str(out)
                )
                measured = measure(
                    command, env=env, cwd=self.work, timeout_s=self.settings.timeout_s
                )
                measured.check(f"diff by {program}")
                rows = int(measured.stdout.split()[-1])
                self.collected.add(
                    f"{program}/diff", programs.Run(program, images, rows, measured, 0.0)
                )
                outputs[program] = out
            diff_bench.check_same_rows(outputs["connector"], outputs["duckdb"])

    def simulator(self, name: str, projects: dict[str, int], *extra: str) -> Simulator:
        args = ["--records", str(self.settings.records), "--token", programs.TOKEN, *extra]
        for project, count in projects.items():
            args += ["--project-records", f"{project}={count}"]
        return Simulator(args, env=self.env, workdir=self.work / name)

    def rate_bound(self) -> None:
        s = self.settings
        limits = ["--rate", f"{s.rate:g}", "--burst", str(s.rate_burst)]
        latency = ["--latency-ms", f"{s.rate_latency_ms:g}", "--jitter-ms", f"{s.rate_jitter_ms:g}"]
        with self.simulator("sim-rate", {"rate": s.records}, *limits, *latency) as sim:
            self.warm_records(sim, ["rate"], rate=s.rate)
            for round_ in range(s.runs):
                self.log(f"rate-bound, round {round_ + 1}/{s.runs}: connector")
                self.connector("connector/rate", sim, "rate", rate=s.rate)

    def account(self) -> None:
        """Many projects on one credential share the gateway's budget: one simulator per
        project size, the same limit, latency and jitter as the rate case."""
        s = self.settings
        limits = ["--rate", f"{s.rate:g}", "--burst", str(s.rate_burst)]
        latency = ["--latency-ms", f"{s.rate_latency_ms:g}", "--jitter-ms", f"{s.rate_jitter_ms:g}"]
        for size in sorted({records for _, records in s.account}):
            counts = [n for n, records in s.account if records == size]
            args = ["--records", str(size), "--token", programs.TOKEN, *limits, *latency]
            with Simulator(args, env=self.env, workdir=self.work / f"sim-account-{size}") as sim:
                self.warm_up_dlt(sim)  # the smaller runs' projects are the largest's first ones
                self.warm_records(sim, account_projects(max(counts), size), rate=s.rate)
                for round_ in range(s.runs):
                    for count in counts:
                        where = f"account, round {round_ + 1}/{s.runs}"
                        what = f"{count} projects of {size:,} records"
                        bursts = [s.account_burst]
                        if (count, size) == TARGET_ACCOUNT and s.account_compare_burst:
                            bursts.append(s.account_compare_burst)
                        for burst in bursts:
                            flag = f"--burst {burst:g}" if burst else "default --burst"
                            self.log(f"{where}: connector {flag}, {what}")
                            self.account_run(sim, count, size, burst)
                        self.log(f"{where}: naive loop, {what}")
                        self.account_peer(sim, "naive", programs.naive, count, size)
                        if "dlt" not in self.collected.skipped:
                            self.log(f"{where}: dlt rest_api, {what}")
                            self.account_peer(sim, "dlt", programs.dlt_rest_api, count, size)

    def account_run(self, sim: Simulator, count: int, size: int, burst: float | None) -> None:
        s = self.settings
        series = account_series(count, size, burst if burst != s.account_burst else None)
        projects = account_projects(count, size)
        before = sim.cpu_s()
        measured, _, report = programs.connector(
            sim.base_url,
            projects,
            self.work / series.replace("/", "-"),
            rate=s.rate,
            burst=burst,
            concurrency=s.concurrency,
            env=self.env,
            timeout_s=s.timeout_s + count * size / 100,
        )
        sim_cpu = sim.cpu_s() - before
        rows = programs.rows_by_project(self.work / series.replace("/", "-") / "out")
        total = self._check_projects(series, rows, dict.fromkeys(projects, size))
        self.collected.add(
            series, programs.Run("connector", total, total, measured, sim_cpu, report)
        )

    def account_peer(
        self, sim: Simulator, name: str, program: Callable[..., _Outcome], count: int, size: int
    ) -> None:
        """A peer over the same projects, one after another (what it does unasked)."""
        series = account_series(count, size).replace("connector/", f"{name}/")
        projects = account_projects(count, size)
        workdir = self.work / series.replace("/", "-")
        before = sim.cpu_s()
        measured, _, _ = program(
            sim.base_url,
            projects,
            workdir,
            env=self.env,
            timeout_s=self.settings.timeout_s + count * size / 50,
        )
        sim_cpu = sim.cpu_s() - before
        if name == "dlt":
            rows = programs.dlt_rows_by_project(workdir, projects)
        elif count > 1:
            rows = programs.rows_by_project(workdir / "out")
        else:
            rows = {projects[0]: programs.parquet_rows(workdir / "out")}
        total = self._check_projects(series, rows, dict.fromkeys(projects, size))
        self.collected.add(series, programs.Run(name, total, total, measured, sim_cpu))

    @staticmethod
    def _check_projects(series: str, rows: dict[str, int], counts: dict[str, int]) -> int:
        """Every project's rows against its records (``counts``), and the total."""
        for project, records in counts.items():
            _check_rows(f"{series} {project}", rows.get(project, 0), records)
        total = sum(rows.values())
        _check_rows(series, total, sum(counts.values()))
        return total

    def throttle(self) -> None:
        """A --rate above the gateway's: does the limiter find the gateway's rate? No
        warm-up of the simulator's records: at 5 to 20 requests/s generating them is
        nothing beside the pace, and a warm-up run would take as long as a measured one."""
        s = self.settings
        latency = ["--latency-ms", f"{s.rate_latency_ms:g}", "--jitter-ms", f"{s.rate_jitter_ms:g}"]
        single = ["--rate", f"{s.throttle_rate:g}", "--burst", "1", *latency]
        projects = {f"throttle-{i}": s.throttle_records for i in range(s.throttle_processes)}
        with self.simulator("sim-throttle", {"throttle-0": s.throttle_records}, *single) as sim:
            for round_ in range(s.runs):
                for over in s.throttle_over:
                    rate = s.throttle_rate * over
                    self.log(
                        f"throttle, round {round_ + 1}/{s.runs}: connector --rate {rate:g} "
                        f"against a gateway at {s.throttle_rate:g}/s (bucket 1)"
                    )
                    self.throttled_runs(
                        sim, throttle_series(over), {"throttle-0": s.throttle_records}, rate
                    )
        shared = [
            "--rate",
            f"{s.throttle_shared_rate:g}",
            "--burst",
            str(s.throttle_shared_bucket),
            *latency,
        ]
        with self.simulator("sim-throttle-shared", projects, *shared) as sim:
            for round_ in range(s.runs):
                self.log(
                    f"throttle, round {round_ + 1}/{s.runs}: {s.throttle_processes} connector "
                    f"processes at the default --rate on one credential, against a gateway at "
                    f"{s.throttle_shared_rate:g}/s (bucket {s.throttle_shared_bucket})"
                )
                self.throttled_runs(sim, throttle_series(None), projects, None)

    def split(self) -> None:
        """One credential's budget divided exactly between processes (one project each,
        all started together) against one process reading every project at the whole
        budget, for each of ``split_variants``; the throttle case's shared gateway, one
        simulator for both. No warm-up of the records, as there."""
        s = self.settings
        gateway = s.throttle_shared_rate
        variants = {
            variant: dict(zip(split_projects(len(sizes), variant), sizes, strict=True))
            for variant, sizes in split_variants(s).items()
        }
        shared = [
            "--rate",
            f"{gateway:g}",
            "--burst",
            str(s.throttle_shared_bucket),
            "--latency-ms",
            f"{s.rate_latency_ms:g}",
            "--jitter-ms",
            f"{s.rate_jitter_ms:g}",
        ]
        every = {project: n for counts in variants.values() for project, n in counts.items()}
        with self.simulator("sim-split", every, *shared) as sim:
            for round_ in range(s.runs):
                for variant, counts in variants.items():
                    n = len(counts)
                    where = f"split{f' {variant}' if variant else ''}, round {round_ + 1}/{s.runs}"
                    for one in (False, True) if round_ % 2 == 0 else (True, False):
                        if one:
                            self.log(f"{where}: one process, {n} projects at --rate {gateway:g}")
                            self.split_one(sim, split_series(1, variant), counts, gateway)
                        else:
                            self.log(
                                f"{where}: {n} processes, one project each at "
                                f"--rate {gateway / n:g}"
                            )
                            self.throttled_runs(sim, split_series(n, variant), counts, gateway / n)

    def split_one(self, sim: Simulator, series: str, counts: dict[str, int], rate: float) -> None:
        s = self.settings
        workdir = self.work / series.replace("/", "-")
        before = sim.cpu_s()
        measured, _, report = programs.connector(
            sim.base_url,
            list(counts),
            workdir,
            rate=rate,
            concurrency=s.concurrency,
            env=self.env,
            timeout_s=s.timeout_s + sum(counts.values()) / 20,
        )
        sim_cpu = sim.cpu_s() - before
        rows = programs.rows_by_project(workdir / "out")
        total = self._check_projects(series, rows, counts)
        self.collected.add(
            f"{series}/p0", programs.Run("connector", total, total, measured, sim_cpu, report)
        )

    def throttled_runs(
        self, sim: Simulator, series: str, counts: dict[str, int], rate: float | None
    ) -> None:
        """One connector process per project (``counts``: its records), all started
        together (``rate`` None: the connector's default --rate); each run is added to
        ``series/pN``."""
        s = self.settings
        projects = list(counts)
        before = sim.cpu_s()

        def one(project: str) -> _Outcome:
            return programs.connector(
                sim.base_url,
                project,
                self.work / f"{series.replace('/', '-')}-{project}",
                rate=rate,
                concurrency=s.concurrency,
                env=self.env,
                timeout_s=s.timeout_s + counts[project] / 20,
            )

        with ThreadPoolExecutor(len(projects)) as pool:
            outcomes = list(pool.map(one, projects))
        sim_cpu = (sim.cpu_s() - before) / len(projects)
        for i, (project, outcome) in enumerate(zip(projects, outcomes, strict=True)):
            measured, rows, report = outcome
            _check_rows(f"{series} {project}", rows, counts[project])
            self.collected.add(
                f"{series}/p{i}",
                programs.Run("connector", counts[project], rows, measured, sim_cpu, report),
            )

    def warm_records(self, sim: Simulator, projects: list[str], *, rate: float) -> None:
        """Read every page once, unmeasured: the simulator generates a record when it is
        first asked for and keeps it, so the first measured run would otherwise pay that on
        the other core (2.8 s of simulator CPU against 0.7 s for the next round, 100,000
        records), and only the program that happens to run first."""
        self.log(f"warming up the simulator's records ({len(projects)} project(s))")
        programs.connector(
            sim.base_url,
            projects,
            self.work / "warmup-records",
            rate=rate,
            concurrency=self.settings.concurrency,
            env=self.env,
            timeout_s=self.settings.timeout_s * 5,
        )

    def warm_up_dlt(self, sim: Simulator) -> None:
        """dlt's first pipeline run compiles and configures: once, before anything measured."""
        if self._dlt_warm or "dlt" in self.collected.skipped:
            return
        if not programs.dlt_available():
            self.collected.skipped["dlt"] = "dlt is not installed: pip install -e '.[bench]'"
            self.log(f"skipping dlt: {self.collected.skipped['dlt']}")
            return
        self.log("warming up dlt (its first run compiles and configures)")
        programs.dlt_rest_api(
            sim.base_url, WARMUP_PROJECT, self.work / "warmup-dlt", env=self.env, timeout_s=300
        )
        self._dlt_warm = True

    def latency_bound(self) -> None:
        s = self.settings
        wanted = set(self.collected.cases)
        projects = {"latency": s.records, WARMUP_PROJECT: WARMUP_RECORDS}
        if "memory" in wanted:
            projects["large"] = s.large_records
        latency = ["--latency-ms", f"{s.latency_ms:g}"]
        with self.simulator("sim-latency", projects, *latency) as sim:
            if "peers" in wanted:
                self.warm_up_dlt(sim)
            self.warm_records(sim, ["latency"], rate=0)  # "large" exceeds the simulator's cache
            for round_ in range(s.runs):
                where = f"round {round_ + 1}/{s.runs}"
                self.log(f"latency-bound, {where}: connector ({s.records:,} records)")
                self.connector("connector/latency", sim, "latency", rate=0)
                if {"latency", "cpu"} & wanted:
                    self.log(f"latency-bound, {where}: minimal aiohttp client (yardstick)")
                    self.peer("minimal/latency", self._minimal, sim)
                if "cpu" in wanted:
                    self.measure_cpu_pairs(sim, round_, where)
                    self.log(f"latency-bound, {where}: minimal client writing the file (yardstick)")
                    self.peer(
                        "minimal-file/latency", functools.partial(self._minimal, write=True), sim
                    )
                    self.log(f"latency-bound, {where}: transform alone vs its floor")
                    self.collected.transform_rounds.append(self.transform(sim))
                if "peers" in wanted:
                    self.log(f"latency-bound, {where}: naive aiohttp loop")
                    self.peer("naive/latency", programs.naive, sim)
                    if "dlt" not in self.collected.skipped:
                        self.log(f"latency-bound, {where}: dlt rest_api")
                        self.peer("dlt/latency", programs.dlt_rest_api, sim)
                if "concurrency" in wanted:
                    for concurrency in s.sweep:
                        self.log(
                            f"latency-bound, {where}: connector at --concurrency {concurrency}"
                        )
                        self.connector(
                            f"connector/latency-c{concurrency}",
                            sim,
                            "latency",
                            rate=0,
                            concurrency=concurrency,
                        )
                if "memory" in wanted:
                    self.log(f"memory, {where}: connector ({s.large_records:,} records)")
                    self.connector("connector/large", sim, "large", rate=0)
            if self.collected.transform_rounds:
                self.collected.transform = _median_transform(self.collected.transform_rounds)
            elif "latency" in wanted:
                self.log("transform alone vs its floor (same bodies, one process)")
                self.collected.transform = self.transform(sim)

    def measure_cpu_pairs(self, sim: Simulator, round_: int, where: str) -> None:
        """The round's (connector, minimal client) pairs for the cpu figure: the latency
        case's, then ``Settings.cpu_pairs - 1`` more, the minimal client first every
        other time."""
        c = self.collected
        c.cpu_pairs.append(CpuPair(round_, c.last("connector/latency"), c.last("minimal/latency")))
        for extra in range(1, self.settings.cpu_pairs):
            self.log(f"cpu, {where}: pair {extra + 1}/{self.settings.cpu_pairs}")
            if extra % 2:
                self.peer("minimal/cpu", self._minimal, sim)
            self.connector("connector/cpu", sim, "latency", rate=0)
            if not extra % 2:
                self.peer("minimal/cpu", self._minimal, sim)
            c.cpu_pairs.append(CpuPair(round_, c.last("connector/cpu"), c.last("minimal/cpu")))

    def connector(
        self,
        series: str,
        sim: Simulator,
        project: str,
        *,
        rate: float,
        concurrency: int | None = None,
    ) -> None:
        records = self.settings.large_records if project == "large" else self.settings.records
        before = sim.cpu_s()
        measured, rows, report = programs.connector(
            sim.base_url,
            project,
            self.work / series.replace("/", "-"),
            rate=rate,
            concurrency=concurrency or self.settings.concurrency,
            env=self.env,
            timeout_s=self.settings.timeout_s,
        )
        sim_cpu = sim.cpu_s() - before
        _check_rows(series, rows, records)
        self.collected.add(
            series, programs.Run("connector", records, rows, measured, sim_cpu, report)
        )

    def peer(self, series: str, program: Callable[..., _Outcome], sim: Simulator) -> None:
        before = sim.cpu_s()
        measured, rows, _ = program(
            sim.base_url,
            "latency",
            self.work / series.replace("/", "-"),
            env=self.env,
            timeout_s=self.settings.timeout_s * 5,
        )
        sim_cpu = sim.cpu_s() - before
        _check_rows(series, rows, self.settings.records)
        name = series.split("/")[0]
        self.collected.add(
            series, programs.Run(name, self.settings.records, rows, measured, sim_cpu)
        )

    def _minimal(
        self,
        base_url: str,
        project_id: str,
        workdir: Path,
        *,
        env: dict[str, str],
        timeout_s: float,
        write: bool = False,
    ) -> _Outcome:
        return programs.minimal(
            base_url,
            project_id,
            workdir,
            concurrency=self.settings.concurrency,
            env=env,
            timeout_s=timeout_s,
            write=write,
        )

    def transform(self, sim: Simulator) -> dict[str, Any]:
        s = self.settings
        command = python_command(
            "-m",
            "benchmarks.transform",
            sim.base_url,
            "latency",
            str(s.records),
            "--token",
            programs.TOKEN,
            "--reps",
            str(s.transform_reps),
        )
        folder = self.work / "transform"
        folder.mkdir(exist_ok=True)
        measured = measure(command, env=self.env, cwd=folder, timeout_s=s.timeout_s * 2)
        measured.check("the transform micro-benchmark")
        result: dict[str, Any] = json.loads(measured.stdout)
        for name in ("orjson", "floor", "connector"):
            _check_rows(f"transform/{name}", result[name]["rows"], s.records)
        return result


_Outcome = tuple[Measured, int, dict[str, Any]]


def _median_transform(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant, the median over rounds of its CPU and wall seconds."""
    merged: dict[str, Any] = {
        name: {
            "cpu_s": statistics.median(r[name]["cpu_s"] for r in rounds),
            "wall_s": statistics.median(r[name]["wall_s"] for r in rounds),
            "rows": rounds[0][name]["rows"],
        }
        for name in ("orjson", "floor", "connector")
    }
    merged["bodies"] = rounds[0]["bodies"]
    return merged


def throttle_series(over: float | None) -> str:
    """The throttle case's series (one per process, ``/pN`` added): ``over`` times the
    gateway's rate, or None for the processes sharing a credential at the default rate."""
    return "connector/throttle-shared" if over is None else f"connector/throttle-{over:g}x"


def split_variants(settings: Settings) -> dict[str, tuple[int, ...]]:
    """The split case's variants, by name ("": the even one), and their projects' records."""
    even = (settings.throttle_records,) * settings.throttle_processes
    return {"": even, "uneven": settings.split_uneven_records}


def split_series(processes: int, variant: str = "") -> str:
    """The split case's series (one per process, ``/pN`` added): ``processes`` 1 is the
    one process reading every project; ``variant`` as in ``split_variants``."""
    way = "one" if processes == 1 else str(processes)
    return f"connector/split-{variant}-{way}" if variant else f"connector/split-{way}"


def split_projects(count: int, variant: str = "") -> list[str]:
    return [f"split-{variant}-{i}" if variant else f"split-{i}" for i in range(count)]


def account_series(count: int, size: int, burst: float | None = None) -> str:
    """The connector's series of an account run; ``burst``: a run at another --burst."""
    return f"connector/account-{count}x{size}" + (f"-burst{burst:g}" if burst else "")


def account_projects(count: int, size: int) -> list[str]:
    return [f"acct{size}-{i:03d}" for i in range(count)]


def _check_rows(series: str, rows: int, expected: int) -> None:
    if rows != expected:
        raise RuntimeError(
            f"{series}: {rows} rows written, but the simulator holds {expected} records"
        )
