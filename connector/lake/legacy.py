"""One-time move of a lake written by version 0.1 (layout 1) to this layout.

Layout 1 kept ``part-<run_id>.parquet`` per partition, the quarantine in
``OUT/_quarantine`` and local staging in ``OUT/_staging``: the last two break readers of OUT
as a directory, and a killed or overlapping run could leave two data files in a partition.
The first run that finds no ``lake.json`` calls ``migrate`` before it writes the marker.

On local disk each partition goes from its newest ``part-*.parquet`` to ``data.parquet`` by
one rename (readers never see two snapshots or none); older leftovers are removed. Object
stores have no rename: there the newest ``part-*`` stays until the partition's next publish
uploads ``data.parquet`` and removes it (``remove_in_partition``).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pyarrow.fs as pafs

from connector.lake.layout import Lake

__all__ = ["migrate", "remove_in_partition"]

log = logging.getLogger("connector")

DATA = re.compile(r"part-(?P<run>.+)\.parquet")
QUARANTINE = re.compile(r"quarantine-(?P<run>.+)\.jsonl")
PARTITION = re.compile(r"project_id=[^/]+/snapshot_date=[^/]+")


def _by_partition(lake: Lake, base: str, pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """Layout-1 files under ``base``, by partition, oldest run first (run ids sort by time)."""
    found: dict[str, list[str]] = defaultdict(list)
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    for info in lake.fs.get_file_info(selector):
        if info.type != pafs.FileType.File or not pattern.fullmatch(info.base_name):
            continue
        partition = info.path[len(base) + 1 : -len(info.base_name) - 1]
        if PARTITION.fullmatch(partition):
            found[partition].append(info.path)
    return {p: sorted(paths) for p, paths in found.items()}


def migrate(lake: Lake) -> int:
    """Bring every partition to this layout; return how many layout-1 files were found."""
    found = 0
    if lake.local:
        shutil.rmtree(Path(lake.root) / "_staging", ignore_errors=True)  # only *.partial
    quarantine_base = f"{lake.root}/_quarantine"
    for partition, paths in _by_partition(lake, quarantine_base, QUARANTINE).items():
        found += len(paths)
        with lake.locked(partition):
            target = lake.quarantine_file(partition)
            if not lake.exists(target):
                lake.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
                lake.fs.move(paths[-1], target)  # the newest run's, beside its data
                paths = paths[:-1]
            for path in paths:
                lake.remove(path)
    if lake.fs.get_file_info(quarantine_base).type == pafs.FileType.Directory:
        lake.fs.delete_dir(quarantine_base)
    for partition, paths in _by_partition(lake, lake.root, DATA).items():
        found += len(paths)
        with lake.locked(partition):
            target = lake.data_file(partition)
            if lake.local and not lake.exists(target):
                Path(paths[-1]).replace(target)  # one rename: one snapshot before and after
                paths = paths[:-1]
            elif not lake.local:
                paths = paths[:-1]  # kept until this partition's next publish
            for path in paths:
                lake.remove(path)
    if found:
        log.warning(
            "moved %d file(s) of the previous layout in %s to this version's layout "
            "(data.parquet per partition; quarantine in %s)",
            found,
            lake.root,
            f"{lake.state}/quarantine",
        )
    return found


def remove_in_partition(lake: Lake, partition: str) -> None:
    """Remove layout-1 data files left in a partition that now has ``data.parquet``."""
    selector = pafs.FileSelector(f"{lake.root}/{partition}", allow_not_found=True)
    for info in lake.fs.get_file_info(selector):
        if info.type == pafs.FileType.File and DATA.fullmatch(info.base_name):
            lake.remove(info.path)
