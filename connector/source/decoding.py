"""Page bodies the schema describes exactly -> typed records, in one strict C pass.

Most pages hold nothing but what the schema says: text in text fields (one of the listed
values in an enumerated field), integers within 64 bits in integer and time fields, no
other field. Such a body is decoded by msgspec straight into one ``msgspec.Struct`` per
record, checked while it is read. Those records need no further check: the Arrow
conversion takes them as tuples (``as_row``), with no second pass for fractions
(``batches.py``) and no per-record check.

Anything else in a body (a fraction or a boolean in a count, a number in a text field, an
integer beyond 64 bits, a field the schema does not know, a value an enumerated field does
not list, a record that is not an object, a ``total_num`` that is not a count, a body that
is not JSON) stops this decoding: ``decode`` returns None and the client parses the body
again with orjson into plain values, which the general path checks, coerces, keeps as
extras or quarantines record by record (``records.RecordChecker``). The fast path decides
nothing: it only recognises the bodies for which the general path would store every
record as it is.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from connector.shape.records import INT64_MAX, INT64_MIN
from connector.shape.schema import FieldSpec, RecordSpec

__all__ = ["Decoded", "PageDecoder", "TypedRecord", "as_row"]

_Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
_Count = Annotated[int, msgspec.Meta(ge=0)]


class TypedRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Base of the record type built from the schema: a record the decoder checked."""


as_row: Callable[[TypedRecord], tuple[Any, ...]] = msgspec.structs.astuple
"""A typed record's values, in the schema's field order."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A page body the schema describes exactly, as typed records."""

    total_num: int
    records: list[TypedRecord]


class PageDecoder:
    """Decodes a page body into typed records when every record fits the schema exactly."""

    def __init__(self, spec: RecordSpec) -> None:
        self._decoder: msgspec.json.Decoder[Any] | None = None
        names = [f.name for f in spec.api_fields]
        if not all(_usable(name) for name in names):
            return  # a field name no attribute can carry: every body takes the general path
        record: Any = msgspec.defstruct(
            "ImageLocalInfo",
            [(f.name, _type(f) | None, None) for f in spec.api_fields],
            bases=(TypedRecord,),
        )
        body = msgspec.defstruct(
            "PageBody", [("total_num", _Count), ("data_list", list[record] | None, None)]
        )
        self._decoder = msgspec.json.Decoder(body)

    def decode(self, body: bytes) -> Decoded | None:
        """The page's typed records, or None: parse it with orjson and check it there."""
        if self._decoder is None:
            return None
        try:
            page = self._decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return Decoded(page.total_num, page.data_list or [])


def _type(field: FieldSpec) -> Any:
    """What the general path stores unchanged: a text (of the listed values, when the field
    lists them), else an integer of 64 bits (as ``records.RecordChecker`` reads it)."""
    if field.type != "string":
        return _Int64
    if field.enum is None:
        return str
    return Literal[field.enum]


def _usable(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
