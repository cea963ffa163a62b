"""How much memory a reading project holds, and how much the run may use.

A project that reads holds, at its peak (``estimate``):

- **pages as Python dicts**: the bounded page queue (``2 x concurrency`` pages), one page
  in each of its ``concurrency`` workers (parsed, or waiting for room in the queue), and
  the chunk the converter gathers (``CHUNK_RECORDS`` plus up to one page);
- **response bodies in flight**: ``concurrency`` pages as bytes;
- **the conversion**: the chunk as Arrow, plus the transient lists the conversion builds;
- **the pending row group**: up to ``ROW_GROUP_ROWS`` plus one chunk of rows as Arrow,
  before it is flushed, and the Parquet writer's own buffers while it encodes them;
- **the completeness chain**: 8 bytes of key per record of the whole project (its
  ``total_num``), put in a set (up to ``SET_CHECK_KEYS`` keys) or copied and sorted once
  at the end to find records seen twice, and per page one held-back overlap record with
  the page's own bookkeeping.

Each term is capped by the project's size: a project of 3,000 records never fills a queue
of 16 pages of 200. The constants are bytes per record, measured on the simulator's
records (seeds 1, 5, 7; 5,000 and 64,000 records, CPython 3.11, pyarrow with mimalloc):

==========================  ======  =============================================
``DICT_BYTES``              3,000   tracemalloc said 1,546 per record for the parsed
                                    pages; the process's RSS grew by 2,823: the
                                    allocator's overhead is real memory, so RSS counts
``BODY_BYTES``              700     the JSON bodies: 658 per record
``ARROW_BYTES``             450     ``RecordBatch.nbytes``: 414 per row, equal to the
                                    Arrow pool's growth
``CONVERT_BYTES``           500     the conversion's transient Python lists and probe
                                    arrays: tracemalloc peak 410 per record
``PARQUET_BYTES``           400     RSS growth while a 64,000-row group was encoded
                                    with zstd: 22 MB, 344 per row
``CHAIN_BYTES``             32      8 per key held, 24 more at the end (the copy, the
                                    sort indices and the sorted keys)
``SET_BYTES``               100     at the end, in a project of at most
                                    ``SET_CHECK_KEYS`` (100,000) records: the set of
                                    its keys, tracemalloc 77-91 per key
``PAGE_BYTES``              1,000   per page, beside its held record: the page kept
                                    for it, the chain's ``PageRead`` and their dict
                                    entries; tracemalloc 620 over 10,000 pages
``FIXED_BYTES``             8 MiB   per project: its converter thread's allocator
                                    arena, writer, sink and tasks
==========================  ======  =============================================

It is a worst case per project: every queue full, every worker holding a page, the
in-flight cap (shared by the projects of a credential) counted for each. Against a real
run (peak RSS, ``VmHWM``, after a warm-up sync): one project of 100,000 records at
concurrency 8 grew the process by 94 MB, estimated 106 MB; six of 20,000 at once by 62 MB,
estimated 361 MB in all. ``tests/integration/test_memory_budget.py`` checks the estimate
against traced peaks.

``estimate`` splits the peak into what a project gives back when its last page is in
(``reading``: pages, bodies, the conversion) and what it holds until its file is closed
(``finishing``: the row group, the writer's buffers, the chain).

The budget (``machine_budget``): a quarter of the memory the process may use, the cgroup
limit when one is set (containers, Airflow workers on Kubernetes), else the memory the
kernel reports available (``/proc/meminfo``), else physical memory (``sysconf``). A
quarter, because the estimate covers the connector's buffers only: the interpreter and its
libraries take about 150 MB more, memory a project freed is not always returned to the
operating system, a project that saw its list change re-reads its whole file to remove
duplicates when it finishes, and an Airflow worker runs several tasks in one container.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connector.errors import ConfigError
from connector.settings.names import setting

__all__ = [
    "BODY_BYTES",
    "CHAIN_BYTES",
    "CONVERT_BYTES",
    "DICT_BYTES",
    "FIXED_BYTES",
    "MIN_BUDGET",
    "PAGE_BYTES",
    "PARQUET_BYTES",
    "SET_BYTES",
    "SET_CHECK_KEYS",
    "Budget",
    "Footprint",
    "estimate",
    "format_size",
    "machine_budget",
    "parse_size",
]

DICT_BYTES = 3_000
BODY_BYTES = 700
ARROW_BYTES = 450
CONVERT_BYTES = 500
PARQUET_BYTES = 400
CHAIN_BYTES = 32
SET_BYTES = 100
SET_CHECK_KEYS = 100_000
"""Up to this many keys, the end of a crawl tells whether a key repeats with a set of them
(``fetcher._repeats``); beyond, Arrow sorts a copy (24 bytes a key where a set takes 100)."""
PAGE_BYTES = 1_000
FIXED_BYTES = 8 * 2**20

MIN_BUDGET = 2**20
"""The smallest budget accepted: 1 MiB (a project bigger than the budget still reads, alone)."""

SHARE = 4
"""The default budget is a 1/SHARE of the memory available to the process."""

FALLBACK = 2 * 2**30
"""Memory assumed when the platform tells nothing (the budget is then a quarter: 512 MiB)."""


@dataclass(frozen=True, slots=True)
class Footprint:
    """A project's estimated peak, in bytes, split by when it is given back."""

    reading: int
    """Held while pages come in; given back when the last page is in."""
    finishing: int
    """Held until the project's file is closed: the row group, the writer, the chain."""

    @property
    def total(self) -> int:
        return self.reading + self.finishing


def estimate(
    total_num: int,
    *,
    page_size: int,
    concurrency: int,
    chunk_records: int,
    row_group_rows: int,
) -> Footprint:
    """The peak bytes a project of ``total_num`` records holds while it reads (module doc).

    Monotone in every size but the page's (smaller pages hold more pages' bookkeeping);
    ``total_num`` is the first page's hint and ``page_size`` the size asked for, so a
    project that grows while it is read, or a server that serves smaller pages, holds a
    little more than estimated.
    """
    n = max(total_num, 0)
    gathered = chunk_records + page_size  # the chunk reaches CHUNK_RECORDS by whole pages
    pages = min(n, 3 * concurrency * page_size + gathered)
    in_flight = min(n, concurrency * page_size)
    converting = min(n, gathered)
    pending = min(n, row_group_rows + gathered)
    reading = pages * DICT_BYTES + in_flight * BODY_BYTES + converting * CONVERT_BYTES
    finishing = (
        pending * (ARROW_BYTES + PARQUET_BYTES)
        + n * CHAIN_BYTES
        + (n * SET_BYTES if n <= SET_CHECK_KEYS else 0)
        + math.ceil(n / page_size) * (DICT_BYTES + PAGE_BYTES)
        + FIXED_BYTES
    )
    return Footprint(reading, finishing)


# ----------------------------------------------------------------------------- sizes

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)")


def parse_size(value: object, *, where: str = setting("memory_limit")) -> int:
    """Bytes from ``512MiB``, ``2GiB``, ``1.5GB``, ``1048576`` (text or a number)."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if match and match.group(2) in _UNITS:
            number = float(match.group(1)) * _UNITS[match.group(2)]
    if number is None or not math.isfinite(number):
        raise ConfigError(
            f"expected a size like 512MiB, 2GiB, 1.5GB or a number of bytes, got {value!r}",
            where=where,
        )
    size = int(number)
    if size < MIN_BUDGET:
        raise ConfigError(f"must be at least 1MiB, got {value!r}", where=where)
    return size


def format_size(size: int) -> str:
    """``1.5 GiB``, ``640 MiB``, ``12 KiB``, ``800 B``: binary units, 3 digits at most."""
    amount, unit = float(size), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, bigger
    text = f"{amount:.1f}".removesuffix(".0") if amount < 100 else f"{amount:.0f}"
    return f"{text} {unit}"


# ---------------------------------------------------------------------------- budget


@dataclass(frozen=True, slots=True)
class Budget:
    """The bytes reading projects may hold at once, and where that figure came from."""

    size: int
    origin: str
    """For the log and the report: ``--memory-limit``, or ``a quarter of the cgroup
    limit 6 GiB``."""

    def __str__(self) -> str:
        return f"{format_size(self.size)} ({self.origin})"


_NO_LIMIT = 2**60
"""cgroup v1 says "no limit" with a number near 2**63 (rounded down to a page)."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cgroup_limit(
    proc: Path = Path("/proc/self"), sys_fs: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """The memory limit of this process's cgroup (v2, else v1), the lowest along its path
    up to the root of the mount; ``None`` when none is set or the files cannot be read."""
    text = _read(proc / "cgroup")
    if text is None:
        return None
    limits: list[int] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2: "0::/path"
            root, name = sys_fs, "memory.max"
        elif "memory" in controllers.split(","):  # v1: "4:memory:/path"
            root, name = sys_fs / "memory", "memory.limit_in_bytes"
        else:
            continue
        here = Path(path.strip().lstrip("/"))
        for folder in (here, *here.parents):
            value = (_read(root / folder / name) or "").strip()
            if value.isdigit() and 0 < int(value) < _NO_LIMIT:
                limits.append(int(value))
    return min(limits) if limits else None


def meminfo_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` (else ``MemTotal``) from ``/proc/meminfo``, in bytes."""
    text = _read(meminfo)
    if text is None:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            scale = 1024 if words[1:] == ["kB"] else 1
            fields[name.strip()] = int(words[0]) * scale
    return fields.get("MemAvailable", fields.get("MemTotal"))


def _physical() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):  # not on this platform
        return None


def machine_budget(
    *,
    cgroup: Callable[[], int | None] = cgroup_limit,
    meminfo: Callable[[], int | None] = meminfo_available,
    physical: Callable[[], int | None] = _physical,
) -> Budget:
    """A quarter of the memory available to the process (module doc). Reads files: call it
    off the event loop."""
    limit, available = cgroup(), meminfo()
    if limit is not None and (available is None or limit <= available):
        base, what = limit, "the cgroup limit"
    elif available is not None:
        base, what = available, "the memory available"
    elif (total := physical()) is not None:
        base, what = total, "the physical memory"
    else:
        base, what = FALLBACK, "an assumed"
    return Budget(max(base // SHARE, MIN_BUDGET), f"a quarter of {what} {format_size(base)}")
