"""The memory estimate, sizes, and where the default budget comes from (fixture files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import ConfigError
from connector.job.memory import (
    MIN_BUDGET,
    Budget,
    Footprint,
    cgroup_limit,
    estimate,
    format_size,
    machine_budget,
    meminfo_available,
    parse_size,
)

GiB, MiB = 2**30, 2**20

sizes = st.fixed_dictionaries(
    {
        "total_num": st.integers(0, 5_000_000),
        "page_size": st.integers(10, 200),
        "concurrency": st.integers(1, 256),
        "chunk_records": st.integers(1, 20_000),
        "row_group_rows": st.integers(1, 200_000),
    }
)


def _estimate(args: dict[str, int]) -> Footprint:
    return estimate(
        args["total_num"],
        page_size=args["page_size"],
        concurrency=args["concurrency"],
        chunk_records=args["chunk_records"],
        row_group_rows=args["row_group_rows"],
    )


@given(sizes, st.sampled_from(["total_num", "concurrency", "chunk_records", "row_group_rows"]))
def test_the_estimate_grows_with_every_size(args: dict[str, int], name: str) -> None:
    bigger = {**args, name: args[name] + 1}
    small, large = _estimate(args), _estimate(bigger)
    assert small.reading <= large.reading and small.finishing <= large.finishing
    assert small.total <= large.total


@given(sizes)
def test_a_bigger_page_never_costs_less_while_reading(args: dict[str, int]) -> None:
    """Pages and bodies grow with the page; only the one held record per page shrinks."""
    if args["page_size"] < 200:
        bigger = {**args, "page_size": args["page_size"] + 1}
        assert _estimate(args).reading <= _estimate(bigger).reading


@given(sizes)
def test_a_project_holds_at_least_its_pages_and_its_chain(args: dict[str, int]) -> None:
    footprint = _estimate(args)
    n = args["total_num"]
    assert footprint.reading >= min(n, args["concurrency"] * args["page_size"]) * 3_000
    assert footprint.finishing >= n * 8
    assert footprint.total == footprint.reading + footprint.finishing


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512 * MiB),
        ("2GiB", 2 * GiB),
        ("1.5GB", 1_500_000_000),
        ("1048576", MiB),
        (" 3 gib ", 3 * GiB),
        ("64mb", 64_000_000),
        ("1.5TiB", 3 * 2**39),
        (2 * GiB, 2 * GiB),
        (1.5e9, 1_500_000_000),
    ],
)
def test_sizes_read_in_decimal_and_binary_units(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("lots", "expected a size like 512MiB"),
        ("2 GiBs", "expected a size like 512MiB"),
        ("-1GiB", "expected a size like 512MiB"),
        (True, "expected a size like 512MiB"),
        (float("inf"), "expected a size like 512MiB"),
        ("1KiB", "must be at least 1MiB"),
        (0, "must be at least 1MiB"),
    ],
)
def test_a_bad_size_names_where_it_came_from(value: object, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_size(value, where="file hss.toml key memory_limit")
    assert str(caught.value).startswith("file hss.toml key memory_limit: ")
    assert words in str(caught.value)


@given(st.integers(MIN_BUDGET, 2**50))
def test_a_size_reads_back_from_its_text_in_bytes(size: int) -> None:
    assert parse_size(str(size)) == parse_size(size) == size


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (800, "800 B"),
        (MiB, "1 MiB"),
        (1536 * MiB, "1.5 GiB"),
        (6 * GiB, "6 GiB"),
        (2**50, "1024 TiB"),
    ],
)
def test_sizes_are_shown_in_binary_units(size: int, text: str) -> None:
    assert format_size(size) == text


# ------------------------------------------------------------------ cgroup, meminfo


def _files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


V1_NO_LIMIT = "9223372036854771712\n"


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        pytest.param(
            {"proc/cgroup": "0::/\n", "sys/memory.max": f"{6 * GiB}\n"},
            6 * GiB,
            id="v2, in a container (its own cgroup is the root)",
        ),
        pytest.param(
            {"proc/cgroup": "0::/kubepods/pod1/c1\n", "sys/kubepods/pod1/c1/memory.max": "max\n"},
            None,
            id="v2, no limit",
        ),
        pytest.param(
            {
                "proc/cgroup": "0::/kubepods/pod1/c1\n",
                "sys/kubepods/pod1/c1/memory.max": "max\n",
                "sys/kubepods/pod1/memory.max": f"{3 * GiB}\n",
                "sys/kubepods/memory.max": f"{64 * GiB}\n",
            },
            3 * GiB,
            id="v2, the pod's limit above the container",
        ),
        pytest.param(
            {
                "proc/cgroup": "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
                "sys/memory/docker/abc/memory.limit_in_bytes": f"{512 * MiB}\n",
                "sys/memory/memory.limit_in_bytes": V1_NO_LIMIT,
            },
            512 * MiB,
            id="v1",
        ),
        pytest.param(
            {
                "proc/cgroup": "4:memory:/\n",
                "sys/memory/memory.limit_in_bytes": V1_NO_LIMIT,
            },
            None,
            id="v1, no limit",
        ),
        pytest.param({}, None, id="no cgroup file (not Linux)"),
        pytest.param(
            {"proc/cgroup": "0::/user.slice\n"}, None, id="v2, no memory controller files"
        ),
    ],
)
def test_the_cgroup_limit_is_read_from_its_files(
    tmp_path: Path, files: dict[str, str], limit: int | None
) -> None:
    _files(tmp_path, files)
    assert cgroup_limit(tmp_path / "proc", tmp_path / "sys") == limit


MEMINFO = """\
MemTotal:       16318480 kB
MemFree:         1203524 kB
MemAvailable:    9876544 kB
Buffers:          402300 kB
"""


def test_meminfo_says_the_memory_available(tmp_path: Path) -> None:
    _files(tmp_path, {"meminfo": MEMINFO, "old": "MemTotal:  2048 kB\nMemFree:  1024 kB\n"})
    assert meminfo_available(tmp_path / "meminfo") == 9876544 * 1024
    assert meminfo_available(tmp_path / "old") == 2048 * 1024  # before Linux 3.14
    assert meminfo_available(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("cgroup", "meminfo", "physical", "budget"),
    [
        (6 * GiB, 20 * GiB, None, Budget(1536 * MiB, "a quarter of the cgroup limit 6 GiB")),
        (
            64 * GiB,
            8 * GiB,
            None,
            Budget(2 * GiB, "a quarter of the memory available 8 GiB"),
        ),
        (None, 8 * GiB, None, Budget(2 * GiB, "a quarter of the memory available 8 GiB")),
        (None, None, 4 * GiB, Budget(GiB, "a quarter of the physical memory 4 GiB")),
        (None, None, None, Budget(512 * MiB, "a quarter of an assumed 2 GiB")),
        (2 * MiB, None, None, Budget(MIN_BUDGET, "a quarter of the cgroup limit 2 MiB")),
    ],
)
def test_the_default_budget_is_a_quarter_of_the_tightest_limit(
    cgroup: int | None, meminfo: int | None, physical: int | None, budget: Budget
) -> None:
    found = machine_budget(
        cgroup=lambda: cgroup, meminfo=lambda: meminfo, physical=lambda: physical
    )
    assert found == budget
    assert str(found) == f"{format_size(budget.size)} ({budget.origin})"
