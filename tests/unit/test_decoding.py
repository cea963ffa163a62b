"""The typed fast path decides nothing: it takes exactly the bodies the general path would
store unchanged, and both write the same rows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.lake.writer import Output
from connector.shape.batches import BatchBuilder
from connector.shape.records import RecordChecker, any_key, key_of, keys_of
from connector.shape.schema import FieldSpec, RecordSpec, file_schema, load_spec
from connector.shape.sink import ProjectSink
from connector.source.client import Page, PageRequest
from connector.source.decoding import PageDecoder, as_row

SPEC = load_spec()
NAMES = [f.name for f in SPEC.api_fields]
DECODER = PageDecoder(SPEC)
CHECKER = RecordChecker(SPEC)


def _fitting(field: FieldSpec) -> st.SearchStrategy[Any]:
    if field.enum is not None:
        return st.sampled_from(field.enum)
    if field.type == "string":
        return st.text(max_size=12)
    return st.integers(-(2**63), 2**63 - 1)


MISFITS: st.SearchStrategy[Any] = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),  # 1.5, and 5.0 (stored as 5)
    st.booleans(),
    st.integers(2**63, 2**64),  # beyond 64 bits (and u64)
    st.integers(-(2**70), -(2**63) - 1),
    st.integers(-100, 100),  # a number in a text field
    st.just("not listed"),
    st.from_regex(r"[0-9]{1,5}", fullmatch=True),  # integer text: coerced by the general path
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _record(misfit: bool) -> st.SearchStrategy[Any]:
    values = {f.name: st.none() | _fitting(f) for f in SPEC.api_fields}
    if misfit:
        values = {f.name: st.none() | _fitting(f) | MISFITS for f in SPEC.api_fields}
    record = st.fixed_dictionaries({}, optional=values)
    if not misfit:
        return record
    extra = st.dictionaries(st.sampled_from(["tag", "region", "x-new"]), st.integers(), max_size=1)
    return st.one_of(
        st.builds(lambda r, e: {**r, **e}, record, extra),
        st.none(),
        st.integers(),
        st.text(max_size=5),
    )


PAGES = st.lists(st.one_of(_record(False), _record(True)), max_size=12)


def _stored_unchanged(raw: Any) -> bool:
    """What the general path stores as it is: a checked object, no coercion, no extra
    field, only listed enum values."""
    if not isinstance(raw, dict) or CHECKER.extras(raw) is not None:
        return False
    if CHECKER.check(raw) is not raw:
        return False
    return all(
        raw.get(f.name) is None or raw[f.name] in f.enum
        for f in SPEC.api_fields
        if f.enum is not None
    )


@given(records=PAGES)
@settings(max_examples=300, deadline=None)
def test_a_body_is_typed_exactly_when_every_record_is_stored_unchanged(records: list[Any]) -> None:
    body = json.dumps({"total_num": len(records), "data_list": records}).encode()
    records = orjson.loads(body)["data_list"]  # as the general path reads it
    decoded = DECODER.decode(body)
    assert (decoded is not None) == all(_stored_unchanged(r) for r in records)
    if decoded is None:
        return
    assert decoded.total_num == len(records)
    assert [as_row(t) for t in decoded.records] == [
        tuple(r.get(name) for name in NAMES) for r in records
    ]
    key = SPEC.natural_key
    assert [any_key(t, key) for t in decoded.records] == [key_of(r, key) for r in records]
    assert list(keys_of(decoded.records, key)) == list(keys_of(records, key))


@pytest.mark.parametrize(
    "body",
    [
        b'{"total_num": true, "data_list": []}',
        b'{"total_num": -1, "data_list": []}',
        b'{"total_num": 1.0, "data_list": []}',
        b'{"data_list": []}',
        b'{"total_num": 1, "data_list": {"image_id": "a"}}',
        b'{"total_num": 1, "data_list": [{"image_id": "\xff"}]}',
        b"[]",
        b"<html>busy</html>",
        b'{"total_num": 1, "data_list": []} trailing',
    ],
)
def test_bodies_the_general_path_must_judge_are_not_typed(body: bytes) -> None:
    assert DECODER.decode(body) is None


def test_a_body_without_data_list_is_an_empty_typed_page() -> None:
    decoded = DECODER.decode(b'{"total_num": 0, "other": [1, 2]}')
    assert decoded is not None and decoded.total_num == 0 and decoded.records == []


def test_field_names_no_attribute_can_carry_send_every_body_to_the_general_path() -> None:
    spec = RecordSpec(
        name="x",
        version=1,
        api_fields=(FieldSpec("class", "string", True, "a keyword"),),
        connector_fields=(),
        natural_key=("class",),
    )
    assert PageDecoder(spec).decode(b'{"total_num": 1, "data_list": [{"class": "a"}]}') is None


@given(records=st.lists(_record(False), max_size=40))
@settings(max_examples=60, deadline=None)
def test_typed_rows_build_the_same_batch_as_the_objects(records: list[dict[str, Any]]) -> None:
    builder = BatchBuilder(SPEC, file_schema())
    decoded = DECODER.decode(orjson.dumps({"total_num": len(records), "data_list": records}))
    assert decoded is not None
    common = {"extras": None, "ingested_at_ms": [7] * len(records), "run_id": "r"}
    typed = builder.build([as_row(t) for t in decoded.records], exact=True, **common)
    plain = builder.build(records, **common)
    assert typed.batch.equals(plain.batch)
    assert not typed.unknown_enum_values and not plain.unknown_enum_values


def _page(offset: int, body: bytes, typed: bool) -> Page:
    records: list[Any]
    if typed:
        decoded = DECODER.decode(body)
        assert decoded is not None
        records = decoded.records
    else:
        records = orjson.loads(body)["data_list"]
    request = PageRequest("p1", offset, 200)
    return Page(request, 3, records, f"req-{offset}", 1_700_000_000_000, typed=typed)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kinds=st.lists(st.booleans(), min_size=1, max_size=6))
def test_a_chunk_of_typed_and_plain_pages_is_staged_in_order_with_nothing_lost(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[bool]
) -> None:
    """Plain pages may hold an unknown field (kept as extras) and a bad record
    (quarantined); typed and plain pages interleave; every record lands once, in order."""
    tmp = tmp_path_factory.mktemp("sink")
    output = Output(str(tmp / "lake"), "run-1")
    writer = output.project("p1", date(2026, 12, 1), file_schema())
    sink = ProjectSink(
        writer, BatchBuilder(SPEC, file_schema()), CHECKER, project_id="p1", run_id="run-1"
    )
    items = []
    for index, typed in enumerate(kinds):
        good = {"image_id": f"i{index}-a", "scan_status": "success", "vul_num": index}
        if typed:
            body = orjson.dumps({"total_num": 2, "data_list": [good, {"image_id": f"i{index}-b"}]})
        else:
            odd = {"image_id": f"i{index}-b", "tag": "new"}
            bad = {"image_id": f"i{index}-c", "vul_num": 1.5}
            body = orjson.dumps({"total_num": 3, "data_list": [good, odd, bad]})
        page = _page(index * 200, body, typed)
        items.append(page.hand_off(0, page.records))
    sink.write(items)
    staged = writer.finish(None)
    expected = [f"i{index}-{suffix}" for index in range(len(kinds)) for suffix in "ab"]
    table = pq.read_table(writer.staged_data)
    assert table.column("image_id").to_pylist() == expected
    ids, extra_fields = table.column("image_id"), table.column("extra_fields")
    extras = dict(zip(ids.to_pylist(), extra_fields.to_pylist(), strict=True))
    for index, typed in enumerate(kinds):
        assert extras[f"i{index}-b"] == (None if typed else '{"tag":"new"}')
    plain = kinds.count(False)
    assert staged.rows == len(expected) and staged.quarantined == plain
    assert sink.counts.records_in == len(expected) + plain
    if plain:
        lines = [orjson.loads(line) for line in writer.staged_quarantine.read_bytes().splitlines()]
        assert [line["field"] for line in lines] == ["vul_num"] * plain
    output.close()


def test_a_typed_page_from_the_client_is_read_by_the_sink(tmp_path: Path) -> None:
    """The same records, typed and plain, give the same Parquet file (lineage aside)."""
    records = [{"image_id": "a", "image_size": 5, "latest_scan_time": 1_700_000_000_000}]
    body = orjson.dumps({"total_num": 1, "data_list": records})
    tables = []
    for typed in (True, False):
        output = Output(str(tmp_path / f"lake-{typed}"), "run-1")
        writer = output.project("p1", date(2026, 12, 1), file_schema())
        sink = ProjectSink(
            writer, BatchBuilder(SPEC, file_schema()), CHECKER, project_id="p1", run_id="run-1"
        )
        page = _page(0, body, typed)
        sink.write([page.hand_off(0, page.records)])
        writer.finish(None)
        tables.append(pq.read_table(writer.staged_data))
    assert tables[0].equals(tables[1])
