"""The benchmark suite runs end to end at tiny sizes. Nothing here is about time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import cli
from benchmarks.suite import CASES

pytestmark = [
    pytest.mark.timeout(300),  # dlt and the account peers, on a loaded machine
    pytest.mark.process,  # the suite times hss-images processes
]


def test_every_case_runs_and_writes_its_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    code = cli.main(
        [
            "--quick",
            "--records",
            "600",
            "--account",
            "1x200,3x300",
            "--runs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| case | figure | value | target | met |")
    results = json.loads(out.read_text())
    assert results["cases"] == list(CASES)
    assert results["machine"]["cores"] >= 1
    series = results["series"]
    for name in (
        "connector/rate",
        "connector/latency",
        "connector/large",
        "naive/latency",
        "minimal/latency",
        "minimal-file/latency",  # its rows counted in the Parquet file it wrote
    ):
        (run,) = series[name]["runs"]
        assert run["rows_written"] == run["records"]
        assert run["user_s"] + run["sys_s"] > 0
        assert run["max_rss_bytes"] > 0
    assert series["connector/large"]["runs"][0]["records"] == 6000
    (run,) = series["connector/account-3x300"]["runs"]
    assert run["rows_written"] == run["records"] == 900
    peers = ["naive"] if "dlt" in results["skipped"] else ["naive", "dlt"]
    for peer in peers:  # the same projects, every project's rows checked (one, and three)
        (run,) = series[f"{peer}/account-3x300"]["runs"]
        assert run["rows_written"] == run["records"] == 900
        (run,) = series[f"{peer}/account-1x200"]["runs"]
        assert run["rows_written"] == run["records"] == 200
    throttle = ["connector/throttle-4x/p0", "connector/throttle-2x/p0"]
    throttle += [f"connector/throttle-shared/p{i}" for i in range(4)]  # one per process
    for name in throttle:
        (run,) = series[name]["runs"]
        assert run["rows_written"] == run["records"] == 600
        assert run["requests"] >= 3 and run["throttled"] >= 0
    assert "connector/throttle-shared/p4" not in series
    for i in range(4):  # the split case: one project a process, then all four in one
        (run,) = series[f"connector/split-4/p{i}"]["runs"]
        assert run["rows_written"] == run["records"] == 600
    (run,) = series["connector/split-one/p0"]["runs"]
    assert run["rows_written"] == run["records"] == 2400
    assert "connector/split-one/p1" not in series
    uneven = (1500, 600, 150, 150)  # the default 50,000/20,000/5,000/5,000, scaled to 600
    assert tuple(results["settings"]["split_uneven_records"]) == uneven
    for i, records in enumerate(uneven):  # the uneven variant: each process its own size
        (run,) = series[f"connector/split-uneven-4/p{i}"]["runs"]
        assert run["rows_written"] == run["records"] == records
    (run,) = series["connector/split-uneven-one/p0"]["runs"]
    assert run["rows_written"] == run["records"] == 2400
    assert "connector/split-uneven-one/p1" not in series
    limits = {"split-4": 0.6, "split-one": 0.6, "split-uneven-4": 0.65, "split-uneven-one": 0.65}
    for name, limit in limits.items():  # 12 and 8 + 3 + 1 + 1 pages, at 20/s
        (together,) = results["split_rounds"][f"connector/{name}"]  # the round's processes
        assert together["sync_ratio"] == together["sync_s"] / limit
        assert together["requests"] >= 12 and together["throttled"] >= 0
    for concurrency in (4, 8, 32):
        (run,) = series[f"connector/latency-c{concurrency}"]["runs"]
        assert run["rows_written"] == run["records"] == 600
    if "dlt" not in results["skipped"]:
        assert series["dlt/latency"]["runs"][0]["rows_written"] == 600
    # the diff case: 6,000 images a side, both programs' rows equal (checked by the suite)
    (ours,) = series["connector/diff"]["runs"]
    (theirs,) = series["duckdb/diff"]["runs"]
    assert ours["records"] == theirs["records"] == 6000
    assert ours["rows_written"] == theirs["rows_written"] > 0
    assert ours["max_rss_bytes"] > 0 and theirs["max_rss_bytes"] > 0
    transform = results["transform"]
    assert {"orjson", "floor", "connector"} <= transform.keys()
    assert all(transform[k]["rows"] == 600 for k in ("orjson", "floor", "connector"))
    (own,) = results["transform_rounds"]  # the cpu case times its floor in every round
    assert own["floor"]["rows"] == 600
    # its pairs: the latency case's, then the others (Settings.cpu_pairs), each with a ratio
    pairs = results["cpu_pairs"]
    assert len(pairs) == results["settings"]["cpu_pairs"] == 3
    extra = series["connector/cpu"]["runs"]
    assert len(extra) == len(series["minimal/cpu"]["runs"]) == 2
    assert all(run["rows_written"] == run["records"] == 600 for run in extra)
    (first,) = series["connector/latency"]["runs"]  # the latency case's run is the first pair
    assert pairs[0]["connector_cpu_s"] == first["user_s"] + first["sys_s"]
    assert all(pair["round"] == 0 and pair["ratio"] > 0 for pair in pairs)
    figures = {(f["case"], f["name"]): f for f in results["figures"]}
    paired = figures[("cpu", "connector end to end / least added up (paired by round)")]
    assert paired["value"] == sorted(pair["ratio"] for pair in pairs)[1]  # their median
    assert figures[("cpu", "  pairs measured (the median's sample)")]["value"] == 3
    assert any(case == "memory" and f["target"] for (case, _), f in figures.items())
    shared = "4 processes, default --rate vs gateway 20/s (bucket 5)"
    assert figures[("throttle", f"{shared}: limit pages/R = 12/20")]["value"] == 0.6
    assert figures[("split", "gateway 20/s (bucket 5): limit pages/R = 12/20")]["value"] == 0.6
    split = figures[("split", "split sync / one process's sync (paired by round)")]
    rounds = results["split_rounds"]
    assert split["value"] == (
        rounds["connector/split-4"][0]["sync_s"] / rounds["connector/split-one"][0]["sync_s"]
    )
    sizes = "uneven 1,500/600/150/150"
    limit = figures[("split", f"{sizes}: gateway 20/s (bucket 5): limit pages/R = 13/20")]
    assert limit["value"] == 0.65
    split = figures[("split", f"{sizes}: split sync / one process's sync (paired by round)")]
    assert split["value"] == (
        rounds["connector/split-uneven-4"][0]["sync_s"]
        / rounds["connector/split-uneven-one"][0]["sync_s"]
    )
    assert ("split", f"{sizes}: 4 processes, one project each, --rate 5: sync / limit") in figures
    for label in ("--rate 20 vs gateway 5/s (bucket 1)", "--rate 10 vs gateway 5/s (bucket 1)"):
        assert figures[("throttle", f"{label}: wall / limit")]["target"] == "<= 1.25"
        assert figures[("throttle", f"{label}: throttled / requests")]["target"] == "<= 15%"
    for figure in results["figures"]:
        assert figure["met"] in (True, False, None)


def test_unknown_case_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--cases", "latency,bogus"])
    assert info.value.code == 2
    assert "unknown case bogus" in capsys.readouterr().err


def test_the_gateway_flags_set_the_simulated_limit_and_response_time() -> None:
    args = cli.build_parser().parse_args(["--gateway", "100,10", "--gateway-latency", "300,50"])
    settings = cli.settings_from(args)
    assert (settings.rate, settings.rate_burst) == (100, 10)
    assert (settings.rate_latency_ms, settings.rate_jitter_ms) == (300, 50)


@pytest.mark.parametrize("value", ["50", "50,x", "0,5", "50,-1"])
def test_a_malformed_gateway_is_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["--gateway", value])
    assert info.value.code == 2
    assert f"{value!r} is not two numbers A,B" in capsys.readouterr().err
