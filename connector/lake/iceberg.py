"""An Iceberg table as the run's publish target (``--format iceberg``): one commit per run.

The pipeline stays the one way through: each project is read and staged as for the folder
lake (``writer.ProjectWriter``), and its publish step writes the staged rows as Iceberg
data files (``Table.stage``, in the project's worker thread). When every project has
ended, one commit (``Table.commit``) replaces the run's (project_id, snapshot_date)
partitions with those files, in one snapshot, and leaves every other partition as it was
(dynamic partition overwrite). A project that failed never reaches the commit: its
previous data stays.

The commit is the catalog's optimistic one: it names the snapshot it was built on, and
fails when another commit came first. The commit is then built again on the new snapshot,
with the rule of the folder lake: a partition that a run which *started later* already
committed is kept, and this run's project is ``superseded`` there; every other partition of
the run is committed. So of two overlapping runs of one partition the one that started later
always ends in place, whichever commits first, and neither commit is lost or doubled.

The embedded catalog is pyiceberg's SQL catalog on ``OUT/catalog.db`` (SQLite) with its
warehouse ``OUT/warehouse``; ``--catalog NAME`` loads any catalog pyiceberg knows, the way
pyiceberg users configure it. Field ids come from ``schemas/image_local_info.json`` (the
position of the field, API fields first); a field the connector adds later is added by
Iceberg schema evolution (``union_by_name``: a new id, no data rewritten).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from connector.errors import ConfigError, OutputError
from connector.lake.layout import Stamp, canonical_query, describe_query
from connector.lake.writer import ROW_GROUP_ROWS
from connector.settings.config import DEFAULT_TABLE, Config
from connector.settings.names import setting
from connector.shape.schema import FieldSpec, load_spec
from connector.version import __version__

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table as IcebergTable

__all__ = [
    "CATALOG_FILE",
    "EMBEDDED_CATALOG",
    "WAREHOUSE",
    "Committed",
    "Table",
    "check_table",
    "iceberg_schema",
    "load_named_catalog",
    "open_table",
    "public_properties",
    "require_pyiceberg",
    "table_identifier",
]

log = logging.getLogger("connector")

EMBEDDED_CATALOG = "hss"
"""The embedded catalog's name (in the report and in pyiceberg's catalog table)."""
CATALOG_FILE = "catalog.db"
"""The embedded catalog: a SQLite file under OUT."""
WAREHOUSE = "warehouse"
"""The embedded catalog's warehouse: a folder under OUT."""
COMMIT_ATTEMPTS = 12
"""Commits built again after another commit came first, before the run gives up."""
CLOCK_SKEW = timedelta(hours=1)
"""How far back before this run's start a snapshot is looked at for a run that started
later (commit times come from each writer's clock)."""

RUN_ID = "hss.run-id"
STARTED = "hss.run-started-at"
QUERY = "hss.query"
VERSION = "hss.connector-version"
SNAPSHOT_DATE = "hss.snapshot-date"
PROJECTS = "hss.projects"
PROJECT_QUERIES = "hss.project-queries"
TABLE_QUERY = "hss.query"
"""The table property recording the query the table holds (as ``lake.json`` does)."""

_SECRET_WORDS = ("secret", "password", "token", "credential", "key", "signer")


def require_pyiceberg() -> None:
    """Fail with the install line when the optional dependency is missing."""
    try:
        import pyiceberg.catalog.sql  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"{setting('format')} iceberg needs pyiceberg with its SQL catalog: pip install "
            f"'hss-image-connector[iceberg]' ({exc})",
            setting="format",
        ) from None


# -- schema -----------------------------------------------------------------------------------


def _iceberg_type(spec: FieldSpec) -> Any:
    from pyiceberg.types import DateType, LongType, StringType, TimestamptzType

    return {
        "string": StringType(),
        "int64": LongType(),
        "timestamp[ms, tz=UTC]": TimestamptzType(),
        "date32": DateType(),
    }[spec.type]


def iceberg_schema() -> Schema:
    """The table's schema: every field of the schema file with its description, ids by
    position (API fields, then the connector's, partition columns last)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    spec = load_spec()
    fields = spec.file_fields + spec.partition_fields
    return Schema(
        *(
            NestedField(
                field_id=number,
                name=f.name,
                field_type=_iceberg_type(f),
                required=not f.nullable,
                doc=f.description,
            )
            for number, f in enumerate(fields, start=1)
        )
    )


def _partition_spec(schema: Schema) -> Any:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    return PartitionSpec(
        *(
            PartitionField(
                source_id=schema.find_field(f.name).field_id,
                field_id=1000 + number,
                transform=IdentityTransform(),
                name=f.name,
            )
            for number, f in enumerate(load_spec().partition_fields)
        )
    )


# -- catalog ------------------------------------------------------------------------------------


def public_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """A catalog's properties fit for a report or a log: secrets masked, no user info in
    URIs (``postgresql://user:pw@host`` -> ``postgresql://host``)."""
    shown: dict[str, str] = {}
    for key, value in sorted(properties.items()):
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_WORDS) and not lowered.endswith(
            ("endpoint", "region", "uri")
        ):
            shown[key] = "***"
            continue
        text = str(value)
        if "://" in text and "@" in urlsplit(text).netloc:
            parts = urlsplit(text)
            text = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
        shown[key] = text
    return shown


def _s3_properties(s3_endpoint: str | None, given: Mapping[str, str]) -> dict[str, str]:
    """The folder lake's S3 settings for a warehouse on object storage, where the catalog's
    own configuration does not set them: the endpoint (``--s3-endpoint``, else
    AWS_ENDPOINT_URL) and the region (AWS_REGION); credentials stay with the environment."""
    extra: dict[str, str] = {}
    endpoint = s3_endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and "s3.endpoint" not in given:
        extra["s3.endpoint"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region and "s3.region" not in given:
        extra["s3.region"] = region
    return extra


def embedded_properties(out: str) -> dict[str, str]:
    """The embedded catalog under a local OUT: its SQLite file and its warehouse folder."""
    root = Path(out).expanduser().resolve()
    return {
        "type": "sql",
        "uri": f"sqlite:///{root / CATALOG_FILE}",
        "warehouse": (root / WAREHOUSE).as_uri(),
    }


def _load_catalog(config: Config) -> tuple[str, Catalog]:
    return load_named_catalog(config.out, config.catalog, config.s3_endpoint)


def load_named_catalog(
    out: str, name: str | None, s3_endpoint: str | None = None
) -> tuple[str, Catalog]:
    """The catalog a sync of ``out`` writes to: the embedded one under ``out`` when
    ``name`` is ``None``, else pyiceberg's catalog ``name``; its name and the catalog."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.catalog.sql import SqlCatalog

    if name is None:
        properties = embedded_properties(out)
        Path(properties["uri"].removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return EMBEDDED_CATALOG, SqlCatalog(EMBEDDED_CATALOG, **properties)
    try:
        catalog = load_catalog(name)
        extra = _s3_properties(s3_endpoint, catalog.properties)
        if extra:
            catalog = load_catalog(name, **extra)
    except ValueError as exc:  # pyiceberg: no such catalog, no type, a bad property
        raise ConfigError(
            f"cannot load the Iceberg catalog {name!r}: {exc} (configure it in "
            f"~/.pyiceberg.yaml or as PYICEBERG_CATALOG__{name.upper()}__URI and friends)",
            setting="catalog",
        ) from None
    return name, catalog


def _identifier(config: Config) -> tuple[str, ...]:
    return table_identifier(config.table)


def table_identifier(table: str | None) -> tuple[str, ...]:
    """``--table`` (default ``hss.image_local_info``) as pyiceberg's identifier."""
    return tuple((table or DEFAULT_TABLE).split("."))


# -- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Staged:
    """One project's rows as Iceberg data files, written but not yet committed."""

    project_id: str
    files: list[DataFile]
    rows: int
    query: str
    publish_quarantine: Any
    """Called once the project's partition is committed (the quarantine beside the lake)."""


@dataclass(frozen=True, slots=True)
class Committed:
    """What the run's commit did."""

    snapshot_id: int | None
    """The run's snapshot; ``None`` when nothing was committed (every project superseded,
    or none published)."""
    files: dict[str, list[str]] = field(default_factory=dict)
    """The data files committed, per project."""
    superseded: dict[str, str] = field(default_factory=dict)
    """Project -> the run, started later, whose partition was kept."""
    attempts: int = 1
    seconds: float = 0.0


def open_table(config: Config, stamp: Stamp) -> Table:
    """The run's table, created when missing, its schema evolved to the connector's; before
    any request, so that a wrong catalog or table fails the run at start (exit 2)."""
    require_pyiceberg()
    from pyiceberg.exceptions import NoSuchTableError

    name, catalog = _load_catalog(config)
    identifier = _identifier(config)
    try:
        try:
            table = catalog.load_table(identifier)
        except NoSuchTableError:
            table = _create(catalog, identifier, stamp)
        table = _evolve(table)
    except (ConfigError, OutputError):
        raise
    except Exception as exc:  # the catalog's own errors: unreachable, refused, corrupt
        raise OutputError(
            f"cannot open the Iceberg table {'.'.join(identifier)} in catalog {name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    held = table.properties.get(TABLE_QUERY)
    if held is not None and stamp.query is not None and held != stamp.query:
        raise ConfigError(
            f"the Iceberg table {'.'.join(identifier)} holds the inventory of another query "
            f"({describe_query(held)}, table property {TABLE_QUERY}); this run asks for "
            f"{describe_query(stamp.query)}. Give a filtered extract a {setting('table')} of its "
            "own",
            setting="table",
        )
    return Table(config, name, catalog, identifier, table, stamp)


def check_table(config: Config) -> str:
    """What ``hss-images check`` says of the table: loads the catalog and the table, checks
    the table's query, writes nothing (an embedded catalog not created yet is not created)."""
    require_pyiceberg()
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    if config.catalog is None:
        uri = embedded_properties(config.out)["uri"]
        if not Path(uri.removeprefix("sqlite:///")).is_file():
            return "no catalog there yet: the first run creates it and the table"
    name, catalog = _load_catalog(config)
    identifier = _identifier(config)
    try:
        table = catalog.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError):
        return f"catalog {name!r} answers; no table {'.'.join(identifier)} yet: the first run creates it"
    except Exception as exc:
        raise OutputError(
            f"cannot load the Iceberg table {'.'.join(identifier)} from catalog {name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    held = table.properties.get(TABLE_QUERY)
    wanted = canonical_query(config.filters.params())
    if held is not None and held != wanted:
        raise ConfigError(
            f"the Iceberg table {'.'.join(identifier)} holds the inventory of another query "
            f"({describe_query(held)}); this run asks for {describe_query(wanted)}",
            setting="table",
        )
    snapshot = table.current_snapshot()
    at = f"snapshot {snapshot.snapshot_id}" if snapshot is not None else "no snapshot yet"
    return f"catalog {name!r}: table {'.'.join(identifier)} at {table.location()}, {at}"


def _create(catalog: Catalog, identifier: tuple[str, ...], stamp: Stamp) -> IcebergTable:
    schema = iceberg_schema()
    catalog.create_namespace_if_not_exists(identifier[:-1])
    properties = {
        "format-version": "2",
        "write.parquet.compression-codec": "zstd",
        # row groups as the folder lake writes them: a reader (the diff) holds one at a time
        "write.parquet.row-group-limit": str(ROW_GROUP_ROWS),
    }
    if stamp.query is not None:
        properties[TABLE_QUERY] = stamp.query
    table = catalog.create_table_if_not_exists(
        identifier, schema=schema, partition_spec=_partition_spec(schema), properties=properties
    )
    log.info("created the Iceberg table %s at %s", ".".join(identifier), table.location())
    return table


def _evolve(table: IcebergTable) -> IcebergTable:
    """Add the connector's fields the table lacks (schema evolution: new ids, no rewrite)."""
    wanted = iceberg_schema()
    have = {f.name for f in table.schema().fields}
    missing = [f.name for f in wanted.fields if f.name not in have]
    if missing:
        with table.update_schema() as update:
            update.union_by_name(wanted)
        log.warning(
            "Iceberg table %s: added the connector's new field(s) %s (schema evolution)",
            ".".join(table.name()),
            ", ".join(missing),
        )
    return table


class Table:
    """The run's Iceberg table: data files staged per project, one commit at the end."""

    def __init__(
        self,
        config: Config,
        catalog_name: str,
        catalog: Catalog,
        identifier: tuple[str, ...],
        table: IcebergTable,
        stamp: Stamp,
    ) -> None:
        self.config = config
        self.catalog_name = catalog_name
        self.catalog = catalog
        self.identifier = identifier
        self.table = table
        self.stamp = stamp
        self.snapshot_date = config.snapshot_date
        self.write_uuid = uuid.uuid4()
        self._counter = itertools.count()  # data file names: unique across the run's projects
        self._staged: dict[str, _Staged] = {}
        self._commit_started = False
        self.committed: Committed | None = None

    @property
    def name(self) -> str:
        return ".".join(self.identifier)

    def describe(self) -> dict[str, Any]:
        """The report's ``table``: format, catalog (no secrets), identifier, location, and
        the snapshot the run committed."""
        committed = self.committed
        return {
            "format": "iceberg",
            "catalog": self.catalog_name,
            "catalog_properties": public_properties(self.catalog.properties),
            "identifier": self.name,
            "location": self.table.location(),
            "snapshot_id": committed.snapshot_id if committed else None,
            "commit_attempts": committed.attempts if committed else 0,
            "commit_s": round(committed.seconds, 3) if committed else 0.0,
        }

    # -- a project's publish step (its worker thread) ---------------------------------------

    def stage(
        self, project_id: str, staged_parquet: Path, query: str, publish_quarantine: Any
    ) -> int:
        """Write a project's staged rows as Iceberg data files of its partition (not yet
        visible: the run's commit adds them); returns the rows."""
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        metadata = self.table.metadata
        arrow_schema = _arrow_schema(self.table)
        rows = pq.read_table(staged_parquet)
        rows = rows.append_column(
            pa.field("project_id", pa.string(), nullable=False),
            pa.array([project_id] * rows.num_rows, pa.string()),
        ).append_column(
            pa.field("snapshot_date", pa.date32(), nullable=False),
            pa.array([self.snapshot_date] * rows.num_rows, pa.date32()),
        )
        rows = rows.select(arrow_schema.names).cast(arrow_schema)
        files: list[DataFile] = []
        if rows.num_rows:
            try:
                files = list(
                    _dataframe_to_data_files(
                        table_metadata=metadata,
                        df=rows,
                        io=self.table.io,
                        write_uuid=self.write_uuid,
                        counter=self._counter,
                    )
                )
            except OSError as exc:
                raise OutputError(
                    f"project {project_id}: cannot write its Iceberg data files under "
                    f"{self.table.location()}: {exc}"
                ) from exc
        self._staged[project_id] = _Staged(
            project_id, files, rows.num_rows, query, publish_quarantine
        )
        return int(rows.num_rows)

    def discard(self) -> None:
        """The run ends without its commit (interrupted, or stopped by an error): remove
        the data files it wrote, which no snapshot references. Once a commit has started
        nothing is removed here (the commit removes what it did not commit)."""
        if not self._commit_started:
            for project_id in list(self._staged):
                self.unstaged(project_id)

    def staged_projects(self) -> list[str]:
        """The projects whose data files wait for the run's commit."""
        return sorted(self._staged)

    def unstaged(self, project_id: str) -> None:
        """A project that failed after staging: its data files are not committed."""
        dropped = self._staged.pop(project_id, None)
        if dropped is not None:
            self._remove([f.file_path for f in dropped.files])

    # -- the run's commit (a worker thread, after every project ended) -----------------------

    def commit(self) -> Committed:
        """One snapshot: the staged projects' partitions replaced, the rest untouched."""
        from pyiceberg.exceptions import CommitFailedException, ValidationException

        started = time.monotonic()
        self._commit_started = True
        staged = dict(self._staged)
        superseded: dict[str, str] = {}
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            table = self.catalog.load_table(self.identifier)
            superseded = self._newer_runs(table, set(staged))
            mine = {p: s for p, s in staged.items() if p not in superseded}
            if not mine:
                self._supersede(staged, superseded)
                self.committed = Committed(
                    None, superseded=superseded, attempts=attempt, seconds=_since(started)
                )
                return self.committed
            try:
                snapshot_id = self._commit_once(table, mine)
            except (CommitFailedException, ValidationException) as exc:
                # the catalog refused the commit (another came first), or pyiceberg's own
                # retry found data added in the run's partitions meanwhile
                log.info(
                    "Iceberg table %s: another commit came first (%s); building the commit "
                    "again on the new snapshot (attempt %d of %d)",
                    self.name,
                    exc,
                    attempt,
                    COMMIT_ATTEMPTS,
                )
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            self._supersede(staged, superseded)
            for project in mine.values():
                project.publish_quarantine()
            self.table = self.catalog.load_table(self.identifier)
            self.committed = Committed(
                snapshot_id,
                files={p: [f.file_path for f in s.files] for p, s in mine.items()},
                superseded=superseded,
                attempts=attempt,
                seconds=_since(started),
            )
            return self.committed
        self._remove([f.file_path for s in staged.values() for f in s.files])
        raise OutputError(
            f"could not commit to the Iceberg table {self.name}: {COMMIT_ATTEMPTS} attempts, "
            "another commit came first every time; nothing of this run was committed"
        )

    def _supersede(self, staged: Mapping[str, _Staged], superseded: Mapping[str, str]) -> None:
        for project_id, run_id in superseded.items():
            log.warning(
                "project %s: not published: the Iceberg table %s already holds the snapshot "
                "of run %s for %s, which started after this run; it is kept",
                project_id,
                self.name,
                run_id,
                self.snapshot_date,
            )
            self._remove([f.file_path for f in staged[project_id].files])

    def _commit_once(self, table: IcebergTable, mine: Mapping[str, _Staged]) -> int:
        properties = {
            RUN_ID: self.stamp.run_id,
            STARTED: self.stamp.started_at.isoformat(timespec="microseconds"),
            QUERY: self.stamp.query or "{}",
            VERSION: __version__,
            SNAPSHOT_DATE: self.snapshot_date.isoformat(),
            PROJECTS: orjson.dumps(sorted(mine)).decode(),
        }
        own = {p: s.query for p, s in mine.items() if s.query != self.stamp.query}
        if own:
            properties[PROJECT_QUERIES] = orjson.dumps(own, option=orjson.OPT_SORT_KEYS).decode()
        replaced = list(_files_of(table, set(mine), self.snapshot_date))
        with (
            table.transaction() as transaction,
            transaction.update_snapshot(snapshot_properties=properties).overwrite() as overwrite,
        ):
            for old in replaced:
                overwrite.delete_data_file(old)
            for project in mine.values():
                for new in project.files:
                    overwrite.append_data_file(new)
        current = table.current_snapshot()
        assert current is not None
        return int(current.snapshot_id)

    def _newer_runs(self, table: IcebergTable, projects: set[str]) -> dict[str, str]:
        """Of ``projects``, those whose partition of this day was last committed by a run
        that started after this one: project -> that run."""
        newer: dict[str, str] = {}
        left = set(projects)
        since = self.stamp.started_at - CLOCK_SKEW
        for snapshot in _ancestors(table):
            if not left:
                break
            if datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC) < since:
                break
            summary = snapshot.summary.additional_properties if snapshot.summary else {}
            if summary.get(SNAPSHOT_DATE) != self.snapshot_date.isoformat():
                continue
            try:
                written = set(orjson.loads(summary.get(PROJECTS, "[]")))
                other = Stamp(
                    summary.get(RUN_ID, ""), datetime.fromisoformat(summary[STARTED]), None
                )
            except (KeyError, ValueError, orjson.JSONDecodeError):
                continue
            for project in left & written:
                if other.newer_than(self.stamp) and other.run_id != self.stamp.run_id:
                    newer[project] = other.run_id
            left -= written
        return newer

    def in_place(
        self, project_id: str, day: date, query: str | None
    ) -> tuple[str, datetime, int, list[str]] | None:
        """``skip_published``: the run, its start, the rows and the data files of the
        project's partition of ``day`` in the current snapshot, when the last commit of it
        was a run of ``query``; else ``None``. Reads metadata only."""
        table = self.catalog.load_table(self.identifier)
        for snapshot in _ancestors(table):
            summary = snapshot.summary.additional_properties if snapshot.summary else {}
            if summary.get(SNAPSHOT_DATE) != day.isoformat():
                continue
            try:
                if project_id not in orjson.loads(summary.get(PROJECTS, "[]")):
                    continue
                own = orjson.loads(summary.get(PROJECT_QUERIES, "{}"))
                started = datetime.fromisoformat(summary[STARTED])
            except (KeyError, ValueError, orjson.JSONDecodeError):
                return None
            if own.get(project_id, summary.get(QUERY)) != query:
                return None
            files = list(_files_of(table, {project_id}, day))
            rows = sum(int(f.record_count) for f in files)
            return summary.get(RUN_ID, ""), started, rows, [f.file_path for f in files]
        return None

    def _remove(self, paths: Iterable[str]) -> None:
        """Data files no snapshot will reference (best effort: else orphans, harmless)."""
        for path in paths:
            try:
                self.table.io.delete(path)
            except Exception as exc:
                log.debug("could not remove the uncommitted data file %s: %s", path, exc)


def _since(started: float) -> float:
    return time.monotonic() - started


def _arrow_schema(table: IcebergTable) -> pa.Schema:
    """The table's schema as Arrow, without field-id metadata (pyiceberg adds the ids)."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    return pa.schema([f.with_metadata(None) for f in schema])


def _ancestors(table: IcebergTable) -> Iterator[Any]:
    from pyiceberg.table.snapshots import ancestors_of

    yield from ancestors_of(table.current_snapshot(), table.metadata)


def _files_of(table: IcebergTable, projects: set[str], day: date) -> Iterator[DataFile]:
    """The data files of the current snapshot in the partitions (project, day)."""
    from pyiceberg.expressions import And, EqualTo, In

    if table.current_snapshot() is None:
        return
    # pyiceberg's expressions take their term and value positionally (its stubs say otherwise)
    where = And(
        In("project_id", projects),  # type: ignore[call-arg, arg-type]
        EqualTo("snapshot_date", day.isoformat()),  # type: ignore[call-arg, arg-type]
    )
    days = (day - date(1970, 1, 1)).days  # how Iceberg keeps a date partition value
    for task in table.scan(row_filter=where).plan_files():
        partition = task.file.partition
        if partition[0] in projects and partition[1] in (day, days):
            yield task.file
