"""Rows -> one ``pa.RecordBatch`` of the file schema.

Typed rows (``exact=True``: the values of ``decoding.TypedRecord``s, which msgspec checked
against the schema while decoding, enumerated values included) are converted in one call,
``pa.array(rows, <struct of the API fields>)``: pyarrow reads the tuples and converts the
values in C++, with no Python loop over rows or fields, and nothing is left to check.

Plain rows (JSON objects) take the same call, which refuses what does not fit a column (a
text in a count, a boolean, an integer beyond 64 bits, a list), but would silently
truncate a fraction (``1.5`` -> ``1``) in an integer or time column. So a second, cheaper
pass reads the integer and time fields as ``float64`` and the two must agree value for
value (integers beyond 2**53 round the same way on both sides; a lossless ``5.0`` agrees
and is stored as ``5``, as ``records.RecordChecker`` would).

When the conversion refuses, the columns are built one by one, to name the field that does
not fit: ``ColumnMismatch``. The caller then checks the records one by one
(``records.RecordChecker``) and builds again from the clean rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connector.shape.schema import RecordSpec

__all__ = ["BatchBuilder", "Built", "ColumnMismatch"]

_INT64 = pa.int64()
_FLOAT64 = pa.float64()
_NULL = pa.null()
_REFUSED = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)


class ColumnMismatch(Exception):
    """A column's values do not fit its type; check the records one by one.

    ``field``: None when the rows were typed (which should always fit)."""

    def __init__(self, field: str | None) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True, slots=True)
class Built:
    """A converted batch and the values its enumerated fields did not list."""

    batch: pa.RecordBatch
    unknown_enum_values: Counter[tuple[str, str]]


class BatchBuilder:
    def __init__(self, spec: RecordSpec, schema: pa.Schema) -> None:
        self.schema = schema
        self.api_fields = [(f.name, schema.field(f.name).type) for f in spec.api_fields]
        self.enums = {
            f.name: pa.array(f.enum, pa.string()) for f in spec.api_fields if f.enum is not None
        }
        self._struct = pa.struct([schema.field(f.name) for f in spec.api_fields])
        self._numeric = [
            (index, name)
            for index, (name, type_) in enumerate(self.api_fields)
            if not pa.types.is_string(type_)
        ]
        self._probe = pa.struct([pa.field(name, _FLOAT64) for _, name in self._numeric])
        self._ingested_type = schema.field("ingested_at").type

    def build(
        self,
        rows: Sequence[Any],
        *,
        extras: Sequence[str | None] | None,
        ingested_at_ms: Sequence[int],
        run_id: str,
        exact: bool = False,
    ) -> Built:
        """``rows``: JSON objects, or (``exact``) typed records' values in field order."""
        n = len(rows)
        columns = self._exact_columns(rows) if exact else self._api_columns(rows)
        columns.append(
            pa.array(extras, pa.string()) if extras is not None else pa.nulls(n, pa.string())
        )
        columns.append(pa.array(ingested_at_ms, self._ingested_type))
        columns.append(pa.repeat(pa.scalar(run_id, pa.string()), n))
        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        if exact:  # typed records hold only the values an enumerated field lists
            return Built(batch, Counter())
        return Built(batch, self._unknown_enum_values(batch))

    def _exact_columns(self, rows: Sequence[tuple[Any, ...]]) -> list[pa.Array]:
        try:
            columns: list[pa.Array] = pa.array(rows, self._struct).flatten()
        except _REFUSED:
            raise ColumnMismatch(None) from None
        return columns

    def _api_columns(self, rows: Sequence[dict[str, Any]]) -> list[pa.Array]:
        try:
            whole = pa.array(rows, self._struct)
            probe = pa.array(rows, self._probe)
        except _REFUSED:
            return self._by_column(rows)
        columns: list[pa.Array] = whole.flatten()
        pc = _compute()
        for position, (index, name) in enumerate(self._numeric):
            exact = columns[index]
            if exact.null_count == len(exact):
                continue
            as_float = exact.view(_INT64).cast(_FLOAT64, safe=False)
            if not pc.all(pc.equal(as_float, probe.field(position))).as_py():
                raise ColumnMismatch(name)  # a fraction, truncated by the first pass
        return columns

    def _by_column(self, rows: Sequence[dict[str, Any]]) -> list[pa.Array]:
        """Column by column, inferring integer columns first: names the misfit."""
        return [
            self._column(name, type_, [row.get(name) for row in rows])
            for name, type_ in self.api_fields
        ]

    @staticmethod
    def _column(name: str, type_: pa.DataType, values: list[Any]) -> pa.Array:
        try:
            if pa.types.is_string(type_):
                return pa.array(values, pa.string())
            inferred = pa.array(values)
        except _REFUSED:
            raise ColumnMismatch(name) from None
        if inferred.type == _INT64:
            return inferred if type_ == _INT64 else inferred.cast(type_)
        if inferred.type == _NULL:
            return pa.nulls(len(values), type_)
        raise ColumnMismatch(name)

    def _unknown_enum_values(self, batch: pa.RecordBatch) -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()
        pc = _compute()
        for name, allowed in self.enums.items():
            column = batch.column(name)
            outside = pc.drop_null(
                pc.filter(column, pc.invert(pc.is_in(column, value_set=allowed)))
            )
            if len(outside):
                for item in pc.value_counts(outside).to_pylist():
                    found[(name, item["values"])] += item["counts"]
        return found


def _compute() -> Any:
    """``pyarrow.compute``, imported on first use: it builds its function wrappers at
    import (about 30 ms), which would otherwise delay every run's first request."""
    import pyarrow.compute

    return pyarrow.compute
