"""The lake's layout and its two rules: one query per lake, one snapshot per partition.

    OUT/project_id=<id>/snapshot_date=<date>/data.parquet     published data, and nothing else
    OUT.connector/                                            the connector's own files, beside OUT
      lake.json                                               the query the lake holds
      quarantine/project_id=<id>/snapshot_date=<date>/quarantine.jsonl
      locks/...                                               (local disk) serialise publishing
      staging/<run_id>/...                                    (local disk) a run in progress

Nothing but data lives under OUT, because readers of OUT as a directory take every file in
it: polars refuses a directory holding a second file extension, DuckDB's and polars'
``**/*.parquet`` match any ``.parquet`` file however hidden its folder. Staging stays on
OUT's filesystem (its parent folder), so a partition is replaced by one rename.

Every data file carries a ``Stamp`` in its Parquet key-value metadata: the run id, the
run's start time and the query. Publishing compares the stamp in place with its own, under
a per-partition lock, so an older run never replaces a newer run's snapshot.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from connector.errors import OutputError
from connector.settings.names import setting

__all__ = [
    "DATA_NAME",
    "LAYOUT",
    "QUARANTINE_NAME",
    "STATE_SUFFIX",
    "Lake",
    "Stamp",
    "canonical_query",
    "describe_query",
    "output_errors",
]

log = logging.getLogger("connector")

STATE_SUFFIX = ".connector"
DATA_NAME = "data.parquet"
QUARANTINE_NAME = "quarantine.jsonl"
LAYOUT = 2
"""1: ``part-<run_id>.parquet`` and ``OUT/_quarantine`` (version 0.1); 2: this layout."""
LOCK_TIMEOUT_S = 120.0
LOCK_POLL_S = 0.05

_RUN_ID = b"hss.run_id"
_STARTED = b"hss.run_started_at"
_QUERY = b"hss.query"


def canonical_query(params: Sequence[tuple[str, object]]) -> str:
    """The API query (parameters other than offset and limit) as one comparable text."""
    return orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS).decode()


def describe_query(query: str) -> str:
    params = orjson.loads(query)
    if not params:
        return "no filters (the API's defaults)"
    return ", ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in params.items())


@dataclass(frozen=True, slots=True)
class Stamp:
    """Which run wrote a data file, when that run started, and with which query."""

    run_id: str
    started_at: datetime
    query: str | None
    """``None``: a file written before queries were recorded (layout 1)."""

    def metadata(self) -> dict[bytes, bytes]:
        assert self.query is not None
        return {
            _RUN_ID: self.run_id.encode(),
            _STARTED: self.started_at.isoformat(timespec="microseconds").encode(),
            _QUERY: self.query.encode(),
        }

    @classmethod
    def from_metadata(cls, metadata: dict[bytes, bytes] | None) -> Stamp:
        metadata = metadata or {}
        try:
            return cls(
                run_id=metadata[_RUN_ID].decode(),
                started_at=datetime.fromisoformat(metadata[_STARTED].decode()),
                query=metadata[_QUERY].decode(),
            )
        except (KeyError, ValueError):
            return UNSTAMPED

    def newer_than(self, other: Stamp) -> bool:
        """Started later (the run id breaks a tie, so two runs are never equal)."""
        return (self.started_at, self.run_id) > (other.started_at, other.run_id)


UNSTAMPED = Stamp(run_id="", started_at=datetime.min.replace(tzinfo=UTC), query=None)


def _reason(exc: OSError) -> str:
    code = exc.errno
    if code == errno.ENOSPC or "No space left on device" in str(exc):
        return (
            "no space left on device: free space on that filesystem or choose another "
            f"{setting('out')}"
        )
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied: choose an {setting('out')} this user may write"
    if code == errno.EROFS:
        return f"read-only file system: choose another {setting('out')}"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def output_errors(what: str) -> Iterator[None]:
    """Turn an OSError (pyarrow raises OSError too) into an OutputError naming ``what``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{what} failed: {_reason(exc)}") from exc


@dataclass(frozen=True, slots=True)
class Lake:
    """Where things live under OUT and beside it, on one filesystem (local or remote)."""

    fs: pafs.FileSystem
    root: str
    local: bool

    @property
    def state(self) -> str:
        return f"{self.root}{STATE_SUFFIX}"

    @property
    def marker(self) -> str:
        return f"{self.state}/lake.json"

    def data_file(self, partition: str) -> str:
        return f"{self.root}/{partition}/{DATA_NAME}"

    def quarantine_file(self, partition: str) -> str:
        return f"{self.state}/quarantine/{partition}/{QUARANTINE_NAME}"

    # -- locks (local disk; object stores have none) -------------------------------------

    @contextlib.contextmanager
    def locked(self, name: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold ``locks/<name>.lock`` (flock) on local disk; a no-op on object storage.

        Lock files are never removed: removing one while another process waits on it
        would let two processes hold "the" lock at once.
        """
        if not self.local:
            yield
            return
        path = Path(f"{self.state}/locks/{name}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OutputError(
                            f"{path} stayed locked by another run for {timeout_s:g} s; if no "
                            "other run of this partition is alive, a stopped process holds it"
                        ) from None
                    time.sleep(LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- small files -----------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type == pafs.FileType.File)

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace ``path`` whole: a temporary file and one rename locally, one PUT remotely."""
        parent = path.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        if not self.local:
            with self.fs.open_output_stream(path) as stream:
                stream.write(data)
            return
        temporary = Path(f"{path}.partial")
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)

    def put(self, staged: Path, target: str) -> None:
        """Put a staged file at ``target`` whole: one rename (local) or one upload.

        Locally the file is flushed to disk first, so a power cut cannot leave the new
        name pointing at an empty file; the folder is flushed after, so the rename lasts.
        """
        directory = target.rsplit("/", 1)[0]
        self.fs.create_dir(directory, recursive=True)
        if self.local:
            fd = os.open(staged, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            staged.replace(target)
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            pafs.copy_files(str(staged), target, destination_filesystem=self.fs)
            staged.unlink()

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)

    # -- stamps and the lake's query ---------------------------------------------------

    def read_stamp(self, path: str) -> Stamp | None:
        """The stamp of the data file at ``path``; ``None`` when there is none."""
        footer = self.read_footer(path)
        return None if footer is None else footer[0]

    def read_footer(self, path: str) -> tuple[Stamp, int] | None:
        """The stamp and row count of the data file at ``path`` (its Parquet footer only);
        ``None`` when there is no file."""
        try:
            if self.local:
                metadata = pq.read_metadata(path)
            else:
                with self.fs.open_input_file(path) as file:
                    metadata = pq.read_metadata(file)
        except FileNotFoundError:
            return None
        except pa.ArrowInvalid:  # not a Parquet file: nothing this connector wrote
            return UNSTAMPED, 0
        return Stamp.from_metadata(metadata.metadata), metadata.num_rows

    def read_query(self) -> str | None:
        """The query recorded in ``lake.json``; ``None`` when the lake has no marker yet."""
        raw = self.read_bytes(self.marker)
        if raw is None:
            return None
        try:
            marker = orjson.loads(raw)
            return canonical_query(list(marker["query"].items()))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise OutputError(
                f"{self.marker} is not the connector's lake marker (expected JSON with a "
                "'query' object); restore it, or remove it to let the next run record its query"
            ) from None

    def write_marker(self, stamp: Stamp) -> None:
        assert stamp.query is not None
        marker = {
            "layout": LAYOUT,
            "query": orjson.loads(stamp.query),
            "recorded_by_run": stamp.run_id,
            "recorded_at": stamp.started_at.isoformat(timespec="seconds"),
            "rule": "every partition under the lake is this query's inventory; a run with "
            "another query refuses to write here (hss-image-connector)",
        }
        self.write_bytes(self.marker, orjson.dumps(marker, option=orjson.OPT_INDENT_2) + b"\n")
