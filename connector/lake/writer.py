"""Partitioned Parquet: staged while a project is read, published whole when it is done.

Layout (``lake.py`` has the full picture)::

    OUT/project_id=<id>/snapshot_date=<YYYY-MM-DD>/data.parquet       published data only
    OUT.connector/quarantine/project_id=<id>/snapshot_date=<date>/quarantine.jsonl
    OUT.connector/staging/<run_id>/...                                 in progress (local)

A partition is always exactly one file, ``data.parquet``. Publishing replaces it whole: one
rename from staging on OUT's filesystem (local disk), or one upload (object storage, where
an object is replaced whole). Nothing is ever deleted to make room, so a reader sees the
old snapshot or the new one, never both and never none, and a killed run leaves one of them.

Publishing compares the stamp of the file in place (run id, run start, query) with this
run's, under a per-partition lock on local disk: a file from a newer run is kept (this run
is "superseded"), a file from another query is refused. Every filesystem error of staging,
finishing and publishing becomes an ``OutputError`` naming the path; every operation of a
project's writer holds its lock, so aborting never closes a Parquet writer that a worker
thread is still using.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from connector.errors import ConfigError, OutputError
from connector.lake import legacy
from connector.lake.layout import (
    Lake,
    Stamp,
    canonical_query,
    describe_query,
    output_errors,
)
from connector.settings.names import setting

if TYPE_CHECKING:
    from connector.lake.iceberg import Table

__all__ = [
    "InPlace",
    "Output",
    "ProjectWriter",
    "Published",
    "Staged",
    "check_bucket",
    "check_query",
    "encode_segment",
    "open_lake",
]

log = logging.getLogger("connector")

MAX_SEGMENT = 120
ROW_GROUP_ROWS = 64_000
STALE_STAGING_S = 24 * 3600
"""A staging folder untouched this long was left by a killed run (a live one appends to its
files)."""
TEMP_STAGING_PREFIX = "hss-staging-"
"""Staging of a run into object storage, in the system's temporary folder."""


def encode_segment(value: str) -> str:
    """A path segment that cannot leave its folder: percent-encoded, bounded in length."""
    encoded = quote(value, safe="-_")
    if encoded in ("", ".", ".."):
        encoded = encoded.replace(".", "%2E") or "%00empty"
    if len(encoded) > MAX_SEGMENT:
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        encoded = f"{encoded[: MAX_SEGMENT - 17]}~{digest}"
    return encoded


def partition_path(project_id: str, snapshot_date: date) -> str:
    return f"project_id={encode_segment(project_id)}/snapshot_date={snapshot_date.isoformat()}"


@dataclass(frozen=True, slots=True)
class Staged:
    """What a project's staging holds once finished (after removing duplicates)."""

    rows: int
    quarantined: int
    duplicates_removed: int


def _s3(uri: str, endpoint: str | None) -> tuple[pafs.FileSystem, str]:
    """An S3 filesystem; credentials from the standard AWS_* environment variables."""
    bucket_and_prefix = uri.removeprefix("s3://").strip("/")
    if not bucket_and_prefix:
        raise OutputError(f"{uri!r} names no bucket: use s3://bucket/prefix")
    options: dict[str, Any] = {}
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OutputError(f"the S3 endpoint {endpoint!r} is not an http(s) URL")
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options), bucket_and_prefix


def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's own filesystems (gs://, hdfs://, ...), else any fsspec filesystem."""
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, str(path)
    except pa.ArrowInvalid:
        pass
    try:
        import fsspec  # an optional dependency: pip install 'hss-image-connector[fsspec]'
    except ImportError:
        raise OutputError(
            f"pyarrow has no filesystem for {uri!r}; install fsspec and the package for "
            "that scheme (pip install 'hss-image-connector[fsspec]')"
        ) from None
    protocol, _, path = uri.partition("://")
    try:
        fs = fsspec.filesystem(protocol)
    except (ImportError, ValueError) as exc:
        raise OutputError(f"no filesystem for {protocol}:// ({exc})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path.rstrip("/")


def open_lake(out: str, s3_endpoint: str | None = None) -> Lake:
    """The filesystem and root folder that ``out`` names, as a run opens them (and
    ``hss-images check``, which opens them the same way and writes nothing)."""
    try:
        if out.startswith("s3://"):
            fs, root = _s3(out, s3_endpoint or os.environ.get("AWS_ENDPOINT_URL"))
        elif "://" in out:
            fs, root = _from_uri(out)
        else:
            fs, root = pafs.LocalFileSystem(), str(Path(out).resolve())
    except (pa.ArrowInvalid, OSError) as exc:
        raise OutputError(f"cannot open the output {out!r}: {exc}") from exc
    root = root.rstrip("/")
    local = isinstance(fs, pafs.LocalFileSystem)
    if not root or (not local and "/" not in root.strip("/")):
        raise ConfigError(
            f"{out!r} is the root of its filesystem or bucket: give a folder inside it "
            f"(e.g. {out.rstrip('/')}/hss_images); the connector keeps its own files "
            "beside that folder",
            setting="out",
        )
    return Lake(fs, root, local)


def check_bucket(lake: Lake) -> None:
    """Fail before any request when the bucket is missing or unreadable."""
    if not isinstance(lake.fs, pafs.S3FileSystem | pafs.GcsFileSystem):
        return
    bucket = lake.root.split("/", 1)[0]
    info = lake.fs.get_file_info(bucket)
    if info.type == pafs.FileType.NotFound:
        raise OutputError(
            f"the bucket {bucket!r} does not exist (or is not visible with these credentials)"
        )


def check_query(lake: Lake, lake_query: str | None, wanted: str, out: str) -> None:
    """A lake is one query's inventory: refuse to write another query into it."""
    if lake_query is None or lake_query == wanted:
        return
    raise ConfigError(
        f"{out} holds the inventory of another query ({describe_query(lake_query)}, "
        f"recorded in {lake.marker}); this run asks for {describe_query(wanted)}. A "
        "partition is one query's inventory, so a run never writes into a lake of another "
        f"query: give a filtered extract an {setting('out')} of its own, or run with the lake's "
        "query",
        setting="out",
    )


@dataclass(frozen=True, slots=True)
class Published:
    """What publishing a project did: the files put in place, or the newer run kept."""

    files: list[str] = field(default_factory=list)
    superseded_by: str | None = None
    """The run whose newer snapshot was in place and kept; nothing of this run was put."""


@dataclass(frozen=True, slots=True)
class InPlace:
    """A partition that a run of the same query already published for the snapshot date."""

    run_id: str
    started_at: datetime
    rows: int
    files: list[str]
    """The data file, and the quarantine file when the partition has one."""


class Output:
    """The output root (local folder or object store), its query, and this run's staging.

    Opening checks, before any request, that the lake holds this run's query (exit 2
    otherwise); a lake without ``lake.json`` is moved to this layout once and then records
    this run's query.
    """

    def __init__(
        self,
        out: str,
        run_id: str,
        s3_endpoint: str | None = None,
        *,
        query: list[tuple[str, Any]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.stamp = Stamp(run_id, datetime.now(UTC), canonical_query(query or []))
        self.lake = open_lake(out, s3_endpoint)
        self.fs, self.root, self.local = self.lake.fs, self.lake.root, self.lake.local
        self.table: Table | None = None
        """With ``--format iceberg``: the table the run publishes to (``iceberg.py``)."""
        try:
            if not self.local:
                check_bucket(self.lake)
            self._check_query(self.lake.read_query(), out)
            if self.local:
                Path(self.root).mkdir(parents=True, exist_ok=True)
                Path(self.lake.state).mkdir(exist_ok=True)
                self._check_same_filesystem(out)
            self._claim(out)
            if self.local:
                self.staging = Path(self.lake.state) / "staging" / run_id
                _sweep_stale(self.staging.parent)
                self.staging.mkdir(parents=True, exist_ok=True)
            else:
                self.staging = Path(tempfile.mkdtemp(prefix=f"{TEMP_STAGING_PREFIX}{run_id}-"))
                _sweep_stale(self.staging.parent, TEMP_STAGING_PREFIX)
        except OSError as exc:
            raise OutputError(
                f"cannot use the output {out!r}: {exc} (a run writes OUT and, beside it, "
                f"its own folder {self.lake.state})"
            ) from exc

    def _check_query(self, lake_query: str | None, out: str) -> None:
        assert self.stamp.query is not None
        check_query(self.lake, lake_query, self.stamp.query, out)

    def _check_same_filesystem(self, out: str) -> None:
        """Staging must be on OUT's filesystem, or a partition could not be one rename."""
        if Path(self.root).stat().st_dev != Path(self.lake.state).stat().st_dev:
            raise ConfigError(
                f"{out} is the root of a mounted filesystem, and the connector keeps its "
                f"staging beside it ({self.lake.state}, on another filesystem), so a "
                "partition could not be replaced by one rename: use a folder inside the "
                f"mount, e.g. {self.root}/hss_images",
                setting="out",
            )

    def _claim(self, out: str) -> None:
        """Record this run's query in a lake without one (after moving an old layout)."""
        with self.lake.locked("lake"):
            lake_query = self.lake.read_query()
            if lake_query is None:
                if legacy.migrate(self.lake):
                    assert self.stamp.query is not None
                    log.warning(
                        "%s was written by an earlier version, which did not record its "
                        "query; it now holds %s",
                        out,
                        describe_query(self.stamp.query),
                    )
                self.lake.write_marker(self.stamp)
            else:
                self._check_query(lake_query, out)

    def project(
        self,
        project_id: str,
        snapshot_date: date,
        schema: pa.Schema,
        *,
        query: list[tuple[str, Any]] | None = None,
    ) -> ProjectWriter:
        """``query``: the project's own query, when it is not the run's (a per-project
        enterprise project or filter); its partition is stamped with it."""
        stamp = self.stamp
        if query is not None:
            stamp = dataclasses.replace(stamp, query=canonical_query(query))
        return ProjectWriter(self, project_id, snapshot_date, schema, stamp)

    def in_place(
        self, project_id: str, snapshot_date: date, *, query: list[tuple[str, Any]] | None = None
    ) -> InPlace | None:
        """The partition of ``project_id`` for ``snapshot_date`` when a run of this query
        (``query``: the project's own, as for ``project``) published it; else ``None``.

        Reads the data file's footer and looks for a quarantine file: no request, nothing
        written. A partition is replaced by one rename, so what is read is a whole snapshot.
        """
        wanted = self.stamp.query if query is None else canonical_query(query)
        if self.table is not None:  # --format iceberg: what the table's snapshots say
            found = self.table.in_place(project_id, snapshot_date, wanted)
            return None if found is None else InPlace(*found)
        partition = partition_path(project_id, snapshot_date)
        data = self.lake.data_file(partition)
        with output_errors(f"reading {data}"):
            footer = self.lake.read_footer(data)
            if footer is None or footer[0].query != wanted:
                return None
            quarantine = self.lake.quarantine_file(partition)
            files = [data, *([quarantine] if self.lake.exists(quarantine) else [])]
        stamp, rows = footer
        return InPlace(stamp.run_id, stamp.started_at, rows, files)

    def close(self) -> None:
        """Remove this run's staging area (published files are already moved out of it)."""
        if self.table is not None:
            self.table.discard()
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.local:
            with contextlib.suppress(OSError):
                self.staging.parent.rmdir()

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"


def _sweep_stale(base: Path, prefix: str = "") -> None:
    """Remove the staging folders in ``base`` (named ``prefix...``) that killed runs left
    behind: a day old or more. A run into object storage stages in the temporary folder, so
    a killed one leaves its partial files there; the next such run removes them."""
    if not base.is_dir():
        return
    for entry in base.iterdir():
        with contextlib.suppress(OSError):  # another run may remove it first
            if (
                entry.name.startswith(prefix)
                and entry.is_dir()
                and _idle_s(entry) > STALE_STAGING_S
            ):
                shutil.rmtree(entry, ignore_errors=True)


def _idle_s(folder: Path) -> float:
    """Seconds since anything in ``folder`` was written (a live run appends row groups)."""
    latest = max([folder.stat().st_mtime, *(f.stat().st_mtime for f in folder.iterdir())])
    return time.time() - latest


class ProjectWriter:
    """One project's partition: a streaming Parquet writer and a quarantine file.

    Every method holds the writer's lock: the conversion thread, ``finish`` and
    ``publish`` (in worker threads) and ``abort`` (after a failure or a cancellation) never
    use the Parquet writer at the same time.
    """

    def __init__(
        self,
        output: Output,
        project_id: str,
        snapshot_date: date,
        schema: pa.Schema,
        stamp: Stamp | None = None,
    ) -> None:
        self.output = output
        self.stamp = stamp or output.stamp
        self.schema = schema.with_metadata({**(schema.metadata or {}), **self.stamp.metadata()})
        self.project_id = project_id
        self.partition = partition_path(project_id, snapshot_date)
        name = encode_segment(project_id)
        self.staged_data = output.staging / f"{name}.parquet.partial"
        self.staged_quarantine = output.staging / f"{name}.quarantine.jsonl.partial"
        self._lock = threading.Lock()
        self._writer: pq.ParquetWriter | None = None
        self._failed = False
        self._quarantine_lines = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[None]:
        """Hold the lock; turn filesystem errors into an OutputError naming ``what``."""
        with self._lock:
            if self._failed:
                raise OutputError(f"project {self.project_id}: {what}: its output already failed")
            try:
                with output_errors(f"project {self.project_id}: {what}"):
                    yield
            except OutputError:
                self._failed = True
                raise

    # -- staging (runs in a worker thread) -----------------------------------------------

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                str(self.staged_data),
                self.schema,
                compression="zstd",
                write_statistics=True,
                store_schema=True,
            )
        return self._writer

    def write(self, batch: pa.RecordBatch) -> None:
        """Buffer batches into row groups of about ROW_GROUP_ROWS rows."""
        if batch.num_rows == 0:
            return
        with self._step(f"writing {self.staged_data}"):
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            if self._pending_rows >= ROW_GROUP_ROWS:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            self._pending, self._pending_rows = [], 0
            self._open().write_table(table, row_group_size=max(table.num_rows, 1))

    def quarantine(self, entries: list[dict[str, object]]) -> None:
        with (
            self._step(f"writing {self.staged_quarantine}"),
            self.staged_quarantine.open("ab") as file,
        ):
            for entry in entries:
                file.write(orjson.dumps(entry, default=repr) + b"\n")
            self._quarantine_lines += len(entries)

    def finish(self, key_fields: tuple[str, ...] | None) -> Staged:
        """Close the staged files; remove duplicates by ``key_fields`` when given.

        Duplicates only arise when the list changed during the crawl and pages were read
        again; the first copy of each record is kept, in data and quarantine alike.
        """
        with self._step(f"finishing {self.staged_data}"):
            self._flush()
            self._open().close()
            rows = pq.ParquetFile(str(self.staged_data)).metadata.num_rows
            removed = 0
            if key_fields is not None and rows:
                rows, removed = self._dedupe_data(key_fields, rows)
            quarantined = self._quarantine_lines
            if key_fields is not None and quarantined:
                quarantined = self._dedupe_quarantine(key_fields)
                removed += self._quarantine_lines - quarantined
                self._quarantine_lines = quarantined
            return Staged(rows, quarantined, removed)

    def _dedupe_data(self, key_fields: tuple[str, ...], rows: int) -> tuple[int, int]:
        import polars as pl  # only after drift; importing it costs ~40 MB of memory

        frame = pl.read_parquet(self.staged_data)
        unique = frame.unique(subset=list(key_fields), keep="first", maintain_order=True)
        removed = frame.height - unique.height
        if not removed:
            return rows, 0
        table = unique.to_arrow().cast(self.schema).replace_schema_metadata(self.schema.metadata)
        deduped = self.staged_data.with_suffix(".dedup")
        pq.write_table(
            table,
            str(deduped),
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
            store_schema=True,
        )
        deduped.replace(self.staged_data)
        return unique.height, removed

    def _dedupe_quarantine(self, key_fields: tuple[str, ...]) -> int:
        seen: set[bytes] = set()
        kept: list[bytes] = []
        for line in self.staged_quarantine.read_bytes().splitlines():
            raw = orjson.loads(line)["record"]
            if isinstance(raw, dict):
                key = orjson.dumps([raw.get(k) for k in key_fields])
            else:
                key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
            if key not in seen:
                seen.add(key)
                kept.append(line)
        self.staged_quarantine.write_bytes(b"".join(line + b"\n" for line in kept))
        return len(kept)

    def abort(self) -> None:
        """Drop the staged files; waits for a step that a worker thread is still running."""
        with self._lock:
            self._failed = True
            if self._writer is not None:
                with contextlib.suppress(OSError, pa.ArrowException):
                    self._writer.close()
            for path in (self.staged_data, self.staged_quarantine):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)

    # -- publishing (runs in a worker thread) --------------------------------------------

    def publish(self) -> Published:
        """Replace the partition's snapshot with this run's, unless a newer run's is there.

        Compare and replace happen under the partition's lock (local disk), so of two runs
        of one partition the one that started later always ends in place, whichever
        finishes first. On object storage there is no lock: the check comes just before
        the upload (README, Object storage).
        """
        lake, stamp = self.output.lake, self.stamp
        target = lake.data_file(self.partition)
        with self._step(f"publishing {target}"), lake.locked(self.partition):
            current = lake.read_stamp(target)
            if current is not None and current.query not in (None, stamp.query):
                assert current.query is not None
                raise OutputError(
                    f"project {self.project_id}: {target} holds another query's inventory "
                    f"({describe_query(current.query)}, run {current.run_id}); refusing to "
                    "replace it (the lake's marker lake.json was changed or removed?)"
                )
            if current is not None and current.newer_than(stamp):
                log.warning(
                    "project %s: not published: %s already holds the snapshot of run %s, "
                    "which started after this run; it is kept",
                    self.project_id,
                    target,
                    current.run_id,
                )
                return Published(superseded_by=current.run_id)
            lake.put(self.staged_data, target)
            files = [target, *self._put_quarantine()]
            legacy.remove_in_partition(lake, self.partition)
        log.debug("published %s", files)
        return Published(files)

    def _put_quarantine(self) -> list[str]:
        """The partition's quarantine file replaced by this run's (removed when empty)."""
        lake = self.output.lake
        quarantine = lake.quarantine_file(self.partition)
        if self._quarantine_lines:
            lake.put(self.staged_quarantine, quarantine)
            return [quarantine]
        lake.remove(quarantine)  # the replaced snapshot's
        return []

    def publish_quarantine(self) -> list[str]:
        """Put the quarantine in place alone: the data went into an Iceberg table."""
        lake = self.output.lake
        with self._step(f"publishing {lake.quarantine_file(self.partition)}"):
            return self._put_quarantine()
