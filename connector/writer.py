"""Partitioned Parquet: staged while a project is read, published whole when it is done.

Layout under ``--out``::

    project_id=<id>/snapshot_date=<YYYY-MM-DD>/part-<run_id>.parquet     published data
    _quarantine/project_id=<id>/snapshot_date=<date>/quarantine-<run_id>.jsonl
    _staging/<run_id>/...                                                 in-progress (local)

Only published data ends in ``.parquet``: staged files end in ``.partial``, so a reader of
``OUT/**/*.parquet`` never sees a half-written file. A partition is one file; publishing is
one rename onto the final name (on local disk) or one object upload (on object storage,
where an object appears whole or not at all). The previous run's file of the same
partition is removed only after the new one is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import OutputError

__all__ = ["Output", "ProjectWriter", "Staged", "encode_segment"]

log = logging.getLogger("connector")

MAX_SEGMENT = 120
ROW_GROUP_ROWS = 64_000
STALE_STAGING_S = 24 * 3600


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


class Output:
    """The output root (local folder or object store) and this run's staging area."""

    def __init__(self, out: str, run_id: str, s3_endpoint: str | None = None) -> None:
        self.run_id = run_id
        try:
            if out.startswith("s3://"):
                self.fs, root = _s3(out, s3_endpoint or os.environ.get("AWS_ENDPOINT_URL"))
            elif "://" in out:
                self.fs, root = _from_uri(out)
            else:
                self.fs, root = pafs.LocalFileSystem(), str(Path(out).resolve())
        except (pa.ArrowInvalid, OSError) as exc:
            raise OutputError(f"cannot open the output {out!r}: {exc}") from exc
        self.root = root.rstrip("/")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        if self.local:
            self.staging = Path(self.root) / "_staging" / run_id
        else:
            self.staging = Path(tempfile.mkdtemp(prefix=f"hss-staging-{run_id}-"))
        try:
            if self.local:
                Path(self.root).mkdir(parents=True, exist_ok=True)
                self._sweep_stale()
            else:
                self._check_bucket()
            self.staging.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot use the output {out!r}: {exc}") from exc

    def _check_bucket(self) -> None:
        """Fail before any request when the bucket is missing or unreadable."""
        if not isinstance(self.fs, pafs.S3FileSystem | pafs.GcsFileSystem):
            return
        bucket = self.root.split("/", 1)[0]
        info = self.fs.get_file_info(bucket)
        if info.type == pafs.FileType.NotFound:
            raise OutputError(
                f"the bucket {bucket!r} does not exist (or is not visible with these credentials)"
            )

    def _sweep_stale(self) -> None:
        """Remove staging folders that killed runs left behind (a day old or more)."""
        base = Path(self.root) / "_staging"
        if not base.is_dir():
            return
        for entry in base.iterdir():
            if entry.is_dir() and time.time() - entry.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(entry, ignore_errors=True)

    def project(self, project_id: str, snapshot_date: date, schema: pa.Schema) -> ProjectWriter:
        return ProjectWriter(self, project_id, snapshot_date, schema)

    def close(self) -> None:
        """Remove this run's staging area (published files are already moved out of it)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.local:
            with contextlib.suppress(OSError):
                self.staging.parent.rmdir()

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"


class ProjectWriter:
    """One project's partition: a streaming Parquet writer and a quarantine file."""

    def __init__(
        self, output: Output, project_id: str, snapshot_date: date, schema: pa.Schema
    ) -> None:
        self.output = output
        self.schema = schema
        self.project_id = project_id
        self.partition = partition_path(project_id, snapshot_date)
        name = encode_segment(project_id)
        self.staged_data = output.staging / f"{name}.parquet.partial"
        self.staged_quarantine = output.staging / f"{name}.quarantine.jsonl.partial"
        self.data_name = f"part-{output.run_id}.parquet"
        self.quarantine_name = f"quarantine-{output.run_id}.jsonl"
        self._writer: pq.ParquetWriter | None = None
        self._quarantine_lines = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

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
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            self._open().write_table(table, row_group_size=max(table.num_rows, 1))
            self._pending, self._pending_rows = [], 0

    def quarantine(self, entries: list[dict[str, object]]) -> None:
        with self.staged_quarantine.open("ab") as file:
            for entry in entries:
                file.write(orjson.dumps(entry, default=repr) + b"\n")
        self._quarantine_lines += len(entries)

    def finish(self, key_fields: tuple[str, ...] | None) -> Staged:
        """Close the staged files; remove duplicates by ``key_fields`` when given.

        Duplicates only arise when the list changed during the crawl and pages were read
        again; the first copy of each record is kept, in data and quarantine alike.
        """
        self._flush()
        self._open().close()
        rows = pq.ParquetFile(str(self.staged_data)).metadata.num_rows
        removed = 0
        if key_fields is not None and rows:
            import polars as pl  # only after drift; importing it costs ~40 MB of memory

            frame = pl.read_parquet(self.staged_data)
            unique = frame.unique(subset=list(key_fields), keep="first", maintain_order=True)
            removed = frame.height - unique.height
            if removed:
                table = unique.to_arrow().cast(self.schema)
                deduped = self.staged_data.with_suffix(".dedup")
                pq.write_table(
                    table, str(deduped), compression="zstd", row_group_size=ROW_GROUP_ROWS
                )
                deduped.replace(self.staged_data)
                rows = unique.height
        quarantined = self._quarantine_lines
        if key_fields is not None and quarantined:
            quarantined = self._dedupe_quarantine(key_fields)
            removed += self._quarantine_lines - quarantined
            self._quarantine_lines = quarantined
        return Staged(rows, quarantined, removed)

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
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
        for path in (self.staged_data, self.staged_quarantine):
            path.unlink(missing_ok=True)

    # -- publishing (runs in a worker thread) --------------------------------------------

    def publish(self) -> list[str]:
        """Put the staged partition in place, then remove what earlier runs left there."""
        published: list[str] = []
        data_dir = self.output.path(self.partition)
        quarantine_dir = self.output.path(f"_quarantine/{self.partition}")
        try:
            published.append(self._place(self.staged_data, data_dir, self.data_name))
            if self._quarantine_lines:
                published.append(
                    self._place(self.staged_quarantine, quarantine_dir, self.quarantine_name)
                )
            self._remove_others(data_dir, keep=self.data_name, suffix=".parquet")
            self._remove_others(quarantine_dir, keep=self.quarantine_name, suffix=".jsonl")
        except OSError as exc:
            raise OutputError(
                f"publishing project {self.project_id} to {data_dir} failed: {exc}"
            ) from exc
        log.debug("published %s", published)
        return published

    def _place(self, staged: Path, directory: str, name: str) -> str:
        fs = self.output.fs
        target = f"{directory}/{name}"
        fs.create_dir(directory, recursive=True)
        if self.output.local:
            staged.replace(target)  # one rename: readers see all of it or none of it
        else:
            pafs.copy_files(str(staged), target, destination_filesystem=fs)
            staged.unlink()
        return target

    def _remove_others(self, directory: str, *, keep: str, suffix: str) -> None:
        fs = self.output.fs
        selector = pafs.FileSelector(directory, allow_not_found=True)
        for info in fs.get_file_info(selector):
            name = info.base_name
            if info.type == pafs.FileType.File and name.endswith(suffix) and name != keep:
                fs.delete_file(info.path)
