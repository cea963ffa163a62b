"""The hand-off from the source to the shape stage: the records of one API answer.

The fetcher hands these over as pages arrive (``source.fetcher.Emit``); the sink converts
them a chunk at a time (``shape.sink``). A page's records may be handed over in parts (a
crawl that re-reads an overlap keeps some records back until it knows they are new), so
one API answer can give several of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PageRecords"]


@dataclass(frozen=True, slots=True)
class PageRecords:
    """Records of one answer and what the output keeps of where they came from."""

    records: list[Any]
    """``source.decoding.TypedRecord``s when ``typed``, else plain JSON values."""
    offset: int
    """The list offset of the first record, for the quarantine's entries."""
    request_id: str | None
    """The API's request id of the answer (``X-Request-Id``), for the quarantine."""
    fetched_at_ms: int
    """When the answer arrived: each row's ``ingested_at``."""
    typed: bool
    """The records were checked against the schema while decoded (``source.decoding``)."""
