"""The Arrow schema used at run time agrees with schemas/image_local_info.json."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from connector.shape.schema import dataset_schema, file_schema, load_spec

SCHEMA_JSON = Path(__file__).resolve().parents[2] / "schemas" / "image_local_info.json"
REFERENCE_FIELDS = [
    "image_name", "image_id", "image_digest", "image_version", "local_image_type",
    "scan_status", "image_size", "latest_update_time", "latest_scan_time", "vul_num",
    "unsafe_setting_num", "malicious_file_num", "host_num", "container_num", "component_num",
    "scan_failed_desc", "severity_level", "host_name", "host_id", "agent_id",
]  # fmt: skip
EXPECTED_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "timestamp[ms, tz=UTC]": pa.timestamp("ms", tz="UTC"),
    "date32": pa.date32(),
}


def test_file_and_runtime_schema_agree() -> None:
    raw = json.loads(SCHEMA_JSON.read_text())
    schema = dataset_schema()
    declared = raw["fields"] + raw["connector_fields"]
    assert [f.name for f in schema] == [f["name"] for f in declared if not f.get("partition")] + [
        f["name"] for f in declared if f.get("partition")
    ]
    for spec in declared:
        field = schema.field(spec["name"])
        assert field.type == EXPECTED_TYPES[spec["type"]], spec["name"]
        assert field.nullable == spec["nullable"], spec["name"]
        assert field.metadata[b"description"].decode() == spec["description"]


def test_every_reference_field_plus_non_scan_reason_is_optional() -> None:
    spec = load_spec()
    names = [f.name for f in spec.api_fields]
    assert names == [*REFERENCE_FIELDS, "non_scan_reason"]
    assert all(f.nullable for f in spec.api_fields)


def test_spark_readable_types_only() -> None:
    for field in dataset_schema():
        assert not pa.types.is_unsigned_integer(field.type), field.name
        if pa.types.is_timestamp(field.type):
            assert field.type.unit == "ms" and field.type.tz == "UTC", field.name


def test_partition_columns_are_not_inside_files() -> None:
    names = file_schema().names
    assert "project_id" not in names and "snapshot_date" not in names
    assert {"ingested_at", "run_id", "extra_fields"} <= set(names)


def test_scan_status_keeps_both_spellings_of_waiting() -> None:
    status = next(f for f in load_spec().api_fields if f.name == "scan_status")
    assert status.enum is not None and {"waiting", "waiting_for_scan"} <= set(status.enum)


def test_natural_key_fields_exist() -> None:
    spec = load_spec()
    assert set(spec.natural_key) <= spec.api_names
