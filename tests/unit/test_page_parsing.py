"""The client's page parser: what it accepts, and the float scan that lets conversion skip
its fraction probe. The scan must never call a body integral when a record holds a float."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.batches import BatchBuilder, ColumnMismatch
from connector.client import PageRequest, _parse_page
from connector.records import RecordChecker
from connector.schema import file_schema, load_spec
from connector.sink import ProjectSink

REQUEST = PageRequest("p", 0, 200)
TRICKY_TEXT = st.sampled_from(
    ["sha256:8e06e5", "v:1.5,", "a:1e5}", ":-2E+3 ,", "1.0", "x: 7.25 }", "ea:0e"]
)
FLOAT = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1.5, -0.25, 5.0, 0.0, 1e16, -2.5e-7, 1e300, 123456789.0]
)
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | FLOAT
    | FLOAT
    | st.text(max_size=12)
    | TRICKY_TEXT
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6) | TRICKY_TEXT, inner, max_size=3),
    max_leaves=12,
)
RECORD = st.dictionaries(st.text(max_size=8) | TRICKY_TEXT, VALUE, max_size=6)


def _member_floats(value: Any) -> bool:
    """Whether a float is the value of some object member (at any depth of objects)."""
    if isinstance(value, dict):
        return any(isinstance(v, float) or _member_floats(v) for v in value.values())
    if isinstance(value, list):
        return any(_member_floats(v) for v in value)
    return False


def _dump(body: dict[str, Any], style: int) -> bytes:
    if style == 0:
        return orjson.dumps(body)
    if style == 1:
        return json.dumps(body).encode()  # ", " and ": " separators
    return json.dumps(body, indent=2).encode()  # newlines before "}"


@given(records=st.lists(RECORD, max_size=5), style=st.integers(0, 2))
@settings(max_examples=400, deadline=None)
def test_a_body_called_integral_holds_no_float_in_any_object(
    records: list[dict[str, Any]], style: int
) -> None:
    body = _dump({"total_num": len(records), "data_list": records}, style)
    page = _parse_page(REQUEST, body, "req", "application/json")
    if page.integral:
        assert not _member_floats(page.records)


@pytest.mark.parametrize("number", ["1.5", "5.0", "1e3", "-2E+2", "0.0"])
@pytest.mark.parametrize("spacing", ["", " ", "\n  "])
def test_a_float_in_a_record_field_is_seen(number: str, spacing: str) -> None:
    body = f'{{"total_num":1,"data_list":[{{"vul_num":{spacing}{number}{spacing}}}]}}'.encode()
    assert not _parse_page(REQUEST, body, None, "application/json").integral


def test_integers_and_hex_text_leave_the_body_integral() -> None:
    record = {"image_digest": "sha256:8e06e5", "vul_num": 3, "image_size": -12, "a": [1.5]}
    body = orjson.dumps({"total_num": 1, "data_list": [record]})
    assert _parse_page(REQUEST, body, None, "application/json").integral


class _Recorder:
    def __init__(self) -> None:
        self.batches: list[Any] = []
        self.quarantined: list[dict[str, object]] = []

    def write(self, batch: Any) -> None:
        self.batches.append(batch)

    def quarantine(self, entries: list[dict[str, object]]) -> None:
        self.quarantined += entries


@pytest.mark.parametrize("value", [1.5, 5.0])
def test_a_page_with_a_float_is_still_probed_in_a_chunk_of_integral_pages(value: float) -> None:
    spec = load_spec()
    clean = orjson.dumps({"total_num": 3, "data_list": [{"vul_num": 1}]})
    dirty = orjson.dumps({"total_num": 3, "data_list": [{"vul_num": value}]})
    pages = [_parse_page(REQUEST, body, None, "") for body in (clean, dirty, clean)]
    assert [p.integral for p in pages] == [True, False, True]
    recorder = _Recorder()
    sink = ProjectSink(
        recorder,  # type: ignore[arg-type]
        BatchBuilder(spec, file_schema()),
        RecordChecker(spec),
        project_id="p",
        run_id="r",
    )
    sink.write([(p, 0, p.records) for p in pages])
    rows = sum(b.num_rows for b in recorder.batches)
    if value == 5.0:  # lossless: stored as 5
        assert rows == 3 and not recorder.quarantined
    else:
        assert rows == 2 and recorder.quarantined[0]["field"] == "vul_num"


def test_without_the_probe_a_fraction_would_be_truncated() -> None:
    """Why the scan must be sound: Arrow's struct pass alone turns 1.5 into 1."""
    builder = BatchBuilder(load_spec(), file_schema())
    rows = [{"vul_num": 1.5}]
    built = builder.build(rows, extras=None, ingested_at_ms=[0], run_id="r", may_hold_floats=False)
    assert built.batch.column("vul_num").to_pylist() == [1]
    with pytest.raises(ColumnMismatch):
        builder.build(rows, extras=None, ingested_at_ms=[0], run_id="r")
