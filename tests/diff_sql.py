"""The manual's DuckDB query of a diff (docs/changes.md), for a given lake and dates.

The tests run it beside ``connector.diff`` and the benchmark times it: both read the
query from the manual, so the manual cannot drift from what is checked.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

__all__ = ["MANUAL_DATES", "MANUAL_LAKE", "manual_sql"]

MANUAL_LAKE = "/data/lake/hss_images"
MANUAL_DATES = (date(2026, 12, 1), date(2026, 12, 2))
_PAGE = Path(__file__).resolve().parents[1] / "docs" / "changes.md"


def manual_sql(lake: str, from_date: date, to_date: date) -> str:
    """The first ``sql`` block of docs/changes.md, its lake and dates replaced."""
    text = _PAGE.read_text(encoding="utf-8")
    match = re.search(r"```sql\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"{_PAGE} has no sql block"
    sql = match[1].strip().rstrip(";")
    for old, new in (
        (MANUAL_LAKE, lake.rstrip("/")),
        (f"DATE '{MANUAL_DATES[0]}'", f"DATE '{from_date}'"),
        (f"DATE '{MANUAL_DATES[1]}'", f"DATE '{to_date}'"),
    ):
        assert old in sql, f"the manual's query no longer holds {old!r}"
        sql = sql.replace(old, new)
    return sql
