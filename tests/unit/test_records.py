"""Record -> Arrow -> Parquet -> DuckDB round trips, and the coercion rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.shape.batches import BatchBuilder, ColumnMismatch
from connector.shape.records import RecordChecker, Rejected, key_of, keys_of
from connector.shape.schema import file_schema, load_spec

SPEC = load_spec()
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=30)


def _value(type_name: str) -> st.SearchStrategy[Any]:
    if type_name == "string":
        return TEXT
    if type_name == "int64":
        return INT64
    return st.integers(0, 4_102_444_800_000)  # epoch ms up to 2100


RECORD = st.fixed_dictionaries(
    {}, optional={f.name: st.none() | _value(f.type) for f in SPEC.api_fields}
)


@given(records=st.lists(RECORD, max_size=30))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_records_round_trip_through_parquet_and_duckdb(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    builder = BatchBuilder(SPEC, file_schema())
    built = builder.build(records, extras=None, ingested_at_ms=[0] * len(records), run_id="r1")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_batches([built.batch]), path)
    names = [f.name for f in SPEC.api_fields]
    time_fields = {f.name for f in SPEC.api_fields if f.type.startswith("timestamp")}
    select = ", ".join(f"epoch_ms({n}) as {n}" if n in time_fields else n for n in names)
    rows = duckdb.sql(f"select {select} from read_parquet('{path}')").fetchall()
    assert len(rows) == len(records)
    for record, row in zip(records, rows, strict=True):
        assert dict(zip(names, row, strict=True)) == {n: record.get(n) for n in names}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("vul_num", "123", 123),
        ("vul_num", 5.0, 5),
        ("latest_update_time", "1697509433000", 1697509433000),
        ("image_name", 42, "42"),
    ],
)
def test_lossless_coercions(field: str, value: Any, expected: Any) -> None:
    checked = RecordChecker(SPEC).check({field: value})
    assert checked == {field: expected}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("vul_num", 1.5, "fraction"),
        ("vul_num", True, "boolean"),
        ("vul_num", "12abc", "text"),
        ("image_size", 2**64, "64-bit"),
        ("image_size", 1.8446744073709552e19, "beyond 64 bits"),  # how orjson reads 2**64 + 1
        ("latest_scan_time", "2024-03-01T10:00:00Z", "date text"),
        ("image_name", ["a"], "expected a string"),
        ("host_num", {"n": 1}, "expected an integer"),
    ],
)
def test_lossy_values_are_rejected_with_field_and_reason(
    field: str, value: Any, reason: str
) -> None:
    raw = {"image_id": "x", field: value}
    checked = RecordChecker(SPEC).check(raw)
    assert isinstance(checked, Rejected)
    assert checked.field == field and reason in checked.reason
    assert checked.raw is raw


def test_non_object_record_is_rejected() -> None:
    checked = RecordChecker(SPEC).check(["not", "a", "record"])
    assert isinstance(checked, Rejected) and checked.field is None


def test_fast_path_refuses_a_fraction_instead_of_truncating_it() -> None:
    builder = BatchBuilder(SPEC, file_schema())
    with pytest.raises(ColumnMismatch) as info:
        builder.build(
            [{"vul_num": 1}, {"vul_num": 1.5}], extras=None, ingested_at_ms=[0, 0], run_id="r"
        )
    assert info.value.field == "vul_num"


def test_unknown_enum_values_are_kept_and_counted() -> None:
    builder = BatchBuilder(SPEC, file_schema())
    rows = [
        {"scan_status": "waiting"},
        {"scan_status": "quarantined"},
        {"scan_status": "quarantined"},
    ]
    built = builder.build(rows, extras=None, ingested_at_ms=[0] * 3, run_id="r")
    assert built.batch.column("scan_status").to_pylist() == [
        "waiting",
        "quarantined",
        "quarantined",
    ]
    assert built.unknown_enum_values == {("scan_status", "quarantined"): 2}


@given(
    st.dictionaries(
        st.sampled_from(["image_id", "host_id", "agent_id", "other"]),
        st.one_of(
            st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)
        ),
    )
)
def test_key_of_is_the_natural_key_whatever_is_missing_or_unhashable(
    record: dict[str, Any],
) -> None:
    fields = ("image_id", "host_id", "agent_id")
    values = tuple(record.get(name) for name in fields)
    try:
        expected = hash(values)
    except TypeError:
        try:
            expected = hash(orjson.dumps(values, option=orjson.OPT_SORT_KEYS))
        except TypeError:  # an integer beyond 64 bits inside a list
            expected = hash(repr(values))
    assert key_of(record, fields) == expected
    assert key_of(dict(reversed(list(record.items()))), fields) == expected


@given(
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"image_id": st.text(max_size=3), "host_id": st.integers(), "agent_id": st.none()}
            ),
            st.dictionaries(
                st.sampled_from(["image_id", "host_id", "agent_id"]),
                st.one_of(st.integers(), st.lists(st.integers(), max_size=2)),
            ),
            st.integers(),
            st.text(max_size=3),
        ),
        max_size=12,
    )
)
def test_the_keys_of_a_page_are_the_keys_of_its_records(records: list[Any]) -> None:
    """The one-pass path and the record-by-record fallback give the same keys: a page
    of good records and a page with one bad record (missing field, list, not an object)."""
    fields = ("image_id", "host_id", "agent_id")
    expected = [key_of(r, fields) if isinstance(r, dict) else hash(repr(r)) for r in records]
    assert list(keys_of(records, fields)) == expected
