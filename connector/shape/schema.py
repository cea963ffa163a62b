"""The Arrow schema of ImageLocalInfo, built from ``schemas/image_local_info.json``.

The JSON file is the single source of truth. It ships inside the wheel as
``connector/schemas/image_local_info.json``; in a source checkout it is read from the
repository's top-level ``schemas/`` folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from connector.errors import ConfigError

__all__ = [
    "FieldSpec",
    "RecordSpec",
    "arrow_type",
    "dataset_schema",
    "file_schema",
    "load_spec",
]

SCHEMA_FILE = "image_local_info.json"

_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "timestamp[ms, tz=UTC]": pa.timestamp("ms", tz="UTC"),
    "date32": pa.date32(),
}


def arrow_type(name: str) -> pa.DataType:
    try:
        return _TYPES[name]
    except KeyError:
        raise ConfigError(
            f"unknown type {name!r}; known: {', '.join(_TYPES)}", where=SCHEMA_FILE
        ) from None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of the schema file (``schemas/``)."""

    name: str
    type: str
    nullable: bool
    description: str
    enum: tuple[str, ...] | None = None
    partition: bool = False

    @property
    def arrow(self) -> pa.Field:
        return pa.field(
            self.name,
            arrow_type(self.type),
            nullable=self.nullable,
            metadata={"description": self.description},
        )


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """The parsed schema file."""

    name: str
    version: int
    api_fields: tuple[FieldSpec, ...]
    connector_fields: tuple[FieldSpec, ...]
    natural_key: tuple[str, ...]

    @property
    def api_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.api_fields)

    @property
    def partition_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.connector_fields if f.partition)

    @property
    def file_fields(self) -> tuple[FieldSpec, ...]:
        """Columns stored inside the Parquet files (partition columns live in paths)."""
        return self.api_fields + tuple(f for f in self.connector_fields if not f.partition)


def _field(raw: dict[str, Any]) -> FieldSpec:
    try:
        enum = raw.get("enum")
        return FieldSpec(
            name=str(raw["name"]),
            type=str(raw["type"]),
            nullable=bool(raw["nullable"]),
            description=str(raw["description"]),
            enum=tuple(str(v) for v in enum) if enum is not None else None,
            partition=bool(raw.get("partition", False)),
        )
    except KeyError as exc:
        raise ConfigError(f"field {raw!r} lacks {exc}", where=SCHEMA_FILE) from None


def _schema_text() -> str:
    packaged = resources.files("connector").joinpath("schemas").joinpath(SCHEMA_FILE)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[2] / "schemas" / SCHEMA_FILE
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise ConfigError(f"schema file not found (looked in the package and in {checkout})")


@cache
def load_spec() -> RecordSpec:
    raw = json.loads(_schema_text())
    spec = RecordSpec(
        name=raw["name"],
        version=int(raw["version"]),
        api_fields=tuple(_field(f) for f in raw["fields"]),
        connector_fields=tuple(_field(f) for f in raw["connector_fields"]),
        natural_key=tuple(raw["natural_key"]),
    )
    for f in spec.api_fields + spec.connector_fields:
        arrow_type(f.type)
    unknown_key = set(spec.natural_key) - spec.api_names
    if unknown_key:
        raise ConfigError(
            f"natural_key names unknown fields {sorted(unknown_key)}", where=SCHEMA_FILE
        )
    return spec


def _schema(fields: tuple[FieldSpec, ...], spec: RecordSpec) -> pa.Schema:
    return pa.schema(
        [f.arrow for f in fields],
        metadata={"record": spec.name, "schema_version": str(spec.version)},
    )


@cache
def file_schema() -> pa.Schema:
    """The schema of every Parquet file written: API fields plus lineage, no partitions."""
    spec = load_spec()
    return _schema(spec.file_fields, spec)


@cache
def dataset_schema() -> pa.Schema:
    """What a hive-partitioned reader sees: the file schema plus the partition columns."""
    spec = load_spec()
    return _schema(spec.file_fields + spec.partition_fields, spec)
