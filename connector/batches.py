"""Rows -> one ``pa.RecordBatch`` of the file schema, column by column.

The fast path builds every column straight from the parsed JSON. A column that does not
fit its type raises ``ColumnMismatch``; the caller then checks the records one by one
(``records.RecordChecker``) and builds again from the clean rows. Integer columns are
type-inferred first because pyarrow would silently truncate ``1.5`` to ``1``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .schema import RecordSpec

__all__ = ["BatchBuilder", "Built", "ColumnMismatch"]

_INT64 = pa.int64()
_NULL = pa.null()


class ColumnMismatch(Exception):
    """A column's values do not fit its type; check the records one by one."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True, slots=True)
class Built:
    batch: pa.RecordBatch
    unknown_enum_values: Counter[tuple[str, str]]


class BatchBuilder:
    def __init__(self, spec: RecordSpec, schema: pa.Schema) -> None:
        self.schema = schema
        self.api_fields = [(f.name, schema.field(f.name).type) for f in spec.api_fields]
        self.enums = {
            f.name: pa.array(f.enum, pa.string()) for f in spec.api_fields if f.enum is not None
        }

    def build(
        self,
        rows: Sequence[dict[str, Any]],
        *,
        extras: Sequence[str | None] | None,
        ingested_at_ms: Sequence[int],
        run_id: str,
    ) -> Built:
        n = len(rows)
        columns: list[pa.Array] = []
        for name, type_ in self.api_fields:
            values = [row.get(name) for row in rows]
            columns.append(self._column(name, type_, values))
        columns.append(pa.array(extras if extras is not None else [None] * n, pa.string()))
        columns.append(pa.array(ingested_at_ms, _INT64).cast(self.schema.field("ingested_at").type))
        columns.append(pa.array([run_id] * n, pa.string()))
        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        return Built(batch, self._unknown_enum_values(batch))

    @staticmethod
    def _column(name: str, type_: pa.DataType, values: list[Any]) -> pa.Array:
        try:
            if pa.types.is_string(type_):
                return pa.array(values, pa.string())
            inferred = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            raise ColumnMismatch(name) from None
        if inferred.type == _INT64:
            return inferred if type_ == _INT64 else inferred.cast(type_)
        if inferred.type == _NULL:
            return pa.nulls(len(values), type_)
        raise ColumnMismatch(name)

    def _unknown_enum_values(self, batch: pa.RecordBatch) -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()
        for name, allowed in self.enums.items():
            column = batch.column(name)
            outside = pc.drop_null(
                pc.filter(column, pc.invert(pc.is_in(column, value_set=allowed)))
            )
            if len(outside):
                for item in pc.value_counts(outside).to_pylist():
                    found[(name, item["values"])] += item["counts"]
        return found
