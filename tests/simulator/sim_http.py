"""HTTP helpers for the simulator tests: a real aiohttp client against 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

Params = Mapping[str, str | int | bool]


def wire(params: Params | None) -> dict[str, str]:
    """Query values as sent on the wire (booleans as true/false)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def aget(
    session: aiohttp.ClientSession,
    url: str,
    params: Params | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    async with session.get(url, params=wire(params), headers=headers) as response:
        body = await response.read()
        return Reply(response.status, CIMultiDictProxy(CIMultiDict(response.headers)), body)


def get(url: str, params: Params | None = None, headers: Mapping[str, str] | None = None) -> Reply:
    async def main() -> Reply:
        async with aiohttp.ClientSession() as session:
            return await aget(session, url, params, headers)

    return asyncio.run(main())


def get_many(
    url: str, params_list: list[Params], headers: Mapping[str, str] | None = None
) -> list[Reply]:
    """Sequential requests over one session."""

    async def main() -> list[Reply]:
        async with aiohttp.ClientSession() as session:
            return [await aget(session, url, params, headers) for params in params_list]

    return asyncio.run(main())


async def acrawl(
    session: aiohttp.ClientSession,
    url: str,
    limit: int = 200,
    headers: Mapping[str, str] | None = None,
    **filters: str | int | bool,
) -> list[dict[str, Any]]:
    """Naive offset paging until an empty or short page (what a careless client does)."""
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        reply = await aget(session, url, {**filters, "offset": offset, "limit": limit}, headers)
        assert reply.status == 200, (reply.status, reply.body[:300])
        page = reply.json()
        records.extend(page["data_list"])
        offset += limit
        if offset >= page["total_num"] or not page["data_list"]:
            return records


def crawl(
    url: str,
    limit: int = 200,
    headers: Mapping[str, str] | None = None,
    **filters: str | int | bool,
) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            return await acrawl(session, url, limit, headers, **filters)

    return asyncio.run(main())


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["image_id"] for record in records]
