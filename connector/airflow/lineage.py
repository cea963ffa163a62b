"""OpenLineage for a sync: the datasets a run read and wrote, and how clean the data was.

    inputs   one per project read
             namespace  the endpoint               https://hss.cn-north-4.myhuaweicloud.com
             name       the project's resource     /v5/{project_id}/image/local-repositories
             facets     dataQualityMetrics         rowCount: the records read
                        dataQualityAssertions      records_match_schema (the quarantined count,
                                                   and per field), max_quarantined (the limit),
                                                   project_published (a failed project's error)
    output   the lake, named as OpenLineage names files and objects (Airflow's Asset
             translation names the lake's ``file://`` or ``s3://`` URI the same way)
             namespace  file | s3://bucket         name  /absolute/path | prefix
             an Iceberg table (``--format iceberg``): its location, named the same way,
             and its catalog name in a ``symlinks`` identifier (type TABLE; namespace the
             catalog's URI), with the ``catalog`` and ``storage`` (iceberg, parquet) facets
             facets     schema                     every field of schemas/image_local_info.json
                                                   with its type, partition columns included
                        outputStatistics           rows, bytes and Parquet files this run
                                                   published

``SyncFacts`` is what the Airflow operator keeps of its run (the projects, the output, the
redacted run report); ``datasets()`` turns it into the ``openlineage-python`` client's
objects. The client is imported on call only: it comes with Airflow's OpenLineage provider
(``pip install 'hss-image-connector[openlineage]'``), and nothing else needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from connector.errors import ConnectorError
from connector.settings.config import Config
from connector.shape.schema import load_spec

if TYPE_CHECKING:
    from openlineage.client.event_v2 import InputDataset, OutputDataset

__all__ = [
    "API_PATH",
    "Assertion",
    "SyncFacts",
    "assertions",
    "datasets",
    "input_dataset",
    "lake",
    "lake_dataset",
    "published_bytes",
    "published_parquet",
    "schema_fields",
    "table_facets",
    "table_namespace",
]

API_PATH = "/v5/{project_id}/image/local-repositories"
"""The API resource a project is read from: the name of its input dataset."""

_KEPT = ("published", "superseded")
"""Project statuses of a run that ended well (superseded: a newer run's snapshot was kept)."""


@dataclass(frozen=True, slots=True)
class SyncFacts:
    """What lineage needs to know of one sync: set when it starts, completed when it ends."""

    targets: tuple[tuple[str, str], ...]
    """(project id, endpoint) of every project read (with ``all_projects``, known only once
    the run has listed them: taken from its report)."""
    out: str
    """The output folder or URL, as configured."""
    max_quarantined: str
    """The quarantine limit, as ``--max-quarantined`` spells it (``50``, ``1%``)."""
    s3_endpoint: str | None = None
    report: Mapping[str, Any] | None = None
    """``RunReport.to_dict()`` (every string redacted); ``None`` when the run raised first."""
    published_size: int | None = None
    """Bytes of the Parquet files the run published, measured when it ended."""

    @classmethod
    def of(cls, config: Config) -> SyncFacts:
        return cls(
            targets=tuple((t.project_id, t.endpoint) for t in config.targets),
            out=config.out,
            max_quarantined=str(config.max_quarantined),
            s3_endpoint=config.s3_endpoint,
        )

    def ended(self, report: Mapping[str, Any]) -> SyncFacts:
        """The facts once the run returned its report: the published files are measured
        now, in the task's own process (OpenLineage's provider builds the events in a
        forked child, where an object-store client inherited from the run may hang)."""
        size = published_bytes(published_parquet(report), self.s3_endpoint)
        targets = self.targets
        if not targets:  # all projects: the ones IAM listed, all read from the run's endpoint
            targets = tuple((project, str(report["endpoint"])) for project in report["projects"])
        return replace(self, targets=targets, report=report, published_size=size)

    def project(self, project_id: str) -> Mapping[str, Any] | None:
        """The report of one project, if the run got that far."""
        if self.report is None:
            return None
        found: Mapping[str, Any] | None = self.report.get("projects", {}).get(project_id)
        return found


# -- names ----------------------------------------------------------------------------------


def input_dataset(project_id: str, endpoint: str) -> tuple[str, str]:
    """(namespace, name) of the API resource one project is read from."""
    return endpoint.rstrip("/"), API_PATH.format(project_id=project_id)


def lake_dataset(out: str) -> tuple[str, str]:
    """(namespace, name) of the lake, after OpenLineage's naming of files and objects.

    A local folder is namespace ``file`` and its absolute path; ``s3://bucket/prefix`` is
    namespace ``s3://bucket`` and name ``prefix``; another ``scheme://host/path`` likewise.
    """
    if "://" not in out:
        return "file", str(Path(out).expanduser().resolve())
    parts = urlsplit(out)
    path = parts.path.strip("/")
    if parts.scheme == "file":  # file:///path, or file://host/path on another host
        return f"file://{parts.netloc}" if parts.netloc else "file", "/" + path
    return f"{parts.scheme}://{parts.netloc}", path or "/"


# -- facts ----------------------------------------------------------------------------------


def schema_fields() -> list[tuple[str, str, str]]:
    """(name, type, description) of every field a reader of the lake sees, in column order:
    the API's fields, the connector's, then the partition columns."""
    spec = load_spec()
    fields = spec.file_fields + spec.partition_fields
    return [(f.name, f.type, f.description) for f in fields]


def published_parquet(report: Mapping[str, Any]) -> list[str]:
    """The Parquet files the run put in place (a superseded project put none)."""
    return [
        path
        for project in report.get("projects", {}).values()
        if project.get("status") == "published"
        for path in project.get("files", ())
        if path.endswith(".parquet")
    ]


def published_rows(report: Mapping[str, Any]) -> int:
    """Rows of the files put in place (a superseded project's rows were staged, not put)."""
    return sum(
        int(p.get("records_written", 0))
        for p in report.get("projects", {}).values()
        if p.get("status") == "published"
    )


def published_bytes(files: Sequence[str], s3_endpoint: str | None = None) -> int | None:
    """The size of the files on their storage, or ``None`` when one cannot be read (the
    storage is out of reach, or a newer run replaced a file since)."""
    total = 0
    try:
        for path in files:
            if "://" not in path:
                total += Path(path).stat().st_size
                continue
            fs, inside = _filesystem(path, s3_endpoint)
            info = fs.get_file_info(inside)
            if info.type != pafs.FileType.File or info.size is None:
                return None
            total += int(info.size)
    except (OSError, pa.ArrowException, ValueError, ConnectorError):
        return None
    return total


def _filesystem(path: str, s3_endpoint: str | None) -> tuple[pafs.FileSystem, str]:
    """The filesystem the writer used for ``path`` (its S3 endpoint and region included)."""
    from connector.lake.writer import _from_uri, _s3

    if path.startswith("s3://"):
        fs, _ = _s3(path, s3_endpoint or os.environ.get("AWS_ENDPOINT_URL"))
        return fs, path.removeprefix("s3://")
    return _from_uri(path)


@dataclass(frozen=True, slots=True)
class Assertion:
    """One data-quality check of a project's records, as OpenLineage reports it."""

    assertion: str
    name: str
    success: bool
    severity: str
    expected: str
    actual: str
    column: str | None = None
    description: str | None = None
    params: Mapping[str, Any] | None = None


def assertions(project: Mapping[str, Any], max_quarantined: str) -> list[Assertion]:
    """What the run found of one project's records: the quarantined count (in all and per
    field), whether it stayed within the limit, and whether the project was published."""
    quarantined = int(project.get("records_quarantined", 0))
    read = int(project.get("records_fetched", 0))
    status = str(project.get("status", "failed"))
    found = [
        Assertion(
            assertion="schema",
            name="records_match_schema",
            success=quarantined == 0,
            severity="warn",
            expected="0",
            actual=str(quarantined),
            description=(
                "records that do not match ImageLocalInfo (schemas/image_local_info.json) "
                "are quarantined, not written; actual is their count"
            ),
            params={"quarantined": quarantined, "read": read},
        )
    ]
    for field, count in sorted(project.get("quarantine_fields", {}).items()):
        found.append(
            Assertion(
                assertion="schema",
                name="records_match_schema",
                success=False,
                severity="warn",
                expected="0",
                actual=str(count),
                column=field,
                description=f"records quarantined for the field {field}",
                params={"quarantined": int(count)},
            )
        )
    found.append(
        Assertion(
            assertion="quarantine_limit",
            name="max_quarantined",
            success=project.get("error_type") != "QuarantineLimitError",
            severity="error",
            expected=f"<= {max_quarantined}",
            actual=str(quarantined),
            description="more quarantined records than the limit: the project is not published",
            params={"quarantined": quarantined, "read": read, "limit": max_quarantined},
        )
    )
    error = None
    if project.get("error_type"):
        error = f"{project['error_type']}: {project.get('error') or ''}".rstrip(": ")
    found.append(
        Assertion(
            assertion="published",
            name="project_published",
            success=status in _KEPT,
            severity="error",
            expected="published",
            actual=status,
            description=error,
        )
    )
    return found


# -- OpenLineage ----------------------------------------------------------------------------


_T = TypeVar("_T")


def _known_fields(cls: type[_T], **values: Any) -> _T:
    """``cls(**values)`` without the values an older client's class does not define (an
    assertion's severity, expected and actual came with openlineage-python 1.54): the
    lineage then says less, instead of failing whole."""
    import attrs

    known = attrs.fields_dict(cls)  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in known})


def datasets(facts: SyncFacts) -> tuple[list[InputDataset], list[OutputDataset]]:
    """The run's input and output datasets, with their facets, as OpenLineage objects."""
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import (
        InputDatasetFacet,
        data_quality_assertions_dataset,
        data_quality_metrics_input_dataset,
    )

    inputs = []
    for project_id, endpoint in facts.targets:
        namespace, name = input_dataset(project_id, endpoint)
        input_facets: dict[str, InputDatasetFacet] = {}
        project = facts.project(project_id)
        if project is not None and project.get("status") == "skipped":
            continue  # skip_published: nothing was read from it, its snapshot stays
        if project is not None:
            input_facets["dataQualityMetrics"] = (
                data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                    columnMetrics={}, rowCount=int(project.get("records_fetched", 0))
                )
            )
            input_facets["dataQualityAssertions"] = (
                data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[
                        _known_fields(
                            data_quality_assertions_dataset.Assertion,
                            assertion=a.assertion,
                            success=a.success,
                            column=a.column,
                            severity=a.severity,
                            name=a.name,
                            description=a.description,
                            expected=a.expected,
                            actual=a.actual,
                            params=dict(a.params or {}),
                        )
                        for a in assertions(project, facts.max_quarantined)
                    ]
                )
            )
        inputs.append(InputDataset(namespace=namespace, name=name, inputFacets=input_facets))

    return inputs, [lake(facts.out, facts.report, facts.published_size)]


def lake(
    out: str, report: Mapping[str, Any] | None = None, size: int | None = None
) -> OutputDataset:
    """The lake as an output dataset: its schema, and with the run's ``report`` what the
    run published there (``size``: its bytes, if known)."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import (
        OutputDatasetFacet,
        output_statistics_output_dataset,
        schema_dataset,
    )

    table = report.get("table") if report is not None else None
    namespace, name = lake_dataset(table["location"] if table else out)
    schema = schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=field, type=kind, description=description, ordinal_position=position
            )
            for position, (field, kind, description) in enumerate(schema_fields(), start=1)
        ]
    )
    output_facets: dict[str, OutputDatasetFacet] = {}
    if report is not None:
        files = published_parquet(report)
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=published_rows(report),
                size=size,
                fileCount=len(files),
            )
        )
    facets: dict[str, Any] = {"schema": schema}
    if table:
        facets.update(table_facets(table))
    return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets)


def table_namespace(table: Mapping[str, Any]) -> str:
    """The namespace of an Iceberg table's catalog name (the ``symlinks`` facet): the
    catalog's URI (no user info: the report's properties have none), else ``iceberg://`` and
    the catalog's name."""
    properties = table.get("catalog_properties") or {}
    return str(properties.get("uri") or f"iceberg://{table['catalog']}")


def table_facets(table: Mapping[str, Any]) -> dict[str, Any]:
    """An Iceberg table's dataset facets: its catalog identifier (``symlinks``, type TABLE),
    its catalog (``catalog``) and its storage layer (``storage``)."""
    from openlineage.client.facet_v2 import catalog_dataset, storage_dataset, symlinks_dataset

    properties = table.get("catalog_properties") or {}
    return {
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[
                symlinks_dataset.Identifier(
                    namespace=table_namespace(table), name=str(table["identifier"]), type="TABLE"
                )
            ]
        ),
        "catalog": _known_fields(
            catalog_dataset.CatalogDatasetFacet,
            framework="iceberg",
            type=str(properties.get("type", "unknown")),
            name=str(table["catalog"]),
            metadataUri=properties.get("uri"),
            warehouseUri=properties.get("warehouse"),
            source="pyiceberg",
        ),
        "storage": storage_dataset.StorageDatasetFacet(
            storageLayer="iceberg", fileFormat="parquet"
        ),
    }
