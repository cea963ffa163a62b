"""HTTP helpers for the simulator tests: a real aiohttp client against 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from connector.source.signing import AkSkCredentials, sign_request

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


def signed(
    url: str,
    credentials: AkSkCredentials,
    params: Params | None = None,
    *,
    project_id: str | None = None,
    now: datetime | None = None,
) -> tuple[URL, dict[str, str]]:
    """The URL and headers of a GET signed as the SDK signs it (``url`` has no query)."""
    parts = urlsplit(url)
    request = sign_request(
        method="GET",
        scheme=parts.scheme,
        host=parts.netloc,
        path=parts.path,
        query=list(wire(params).items()),
        headers={},
        body=None,
        credentials=credentials,
        project_id=project_id,
        now=now or datetime.now(UTC),
    )
    return URL(request.url, encoded=True), request.headers


async def aget_url(
    session: aiohttp.ClientSession, url: URL, headers: Mapping[str, str] | None = None
) -> Reply:
    """GET exactly this (already encoded) URL."""
    async with session.get(url, headers=headers) as response:
        body = await response.read()
        return Reply(response.status, CIMultiDictProxy(CIMultiDict(response.headers)), body)


def get_url(url: URL, headers: Mapping[str, str] | None = None) -> Reply:
    async def main() -> Reply:
        async with aiohttp.ClientSession() as session:
            return await aget_url(session, url, headers)

    return asyncio.run(main())


def get_signed(
    url: str,
    credentials: AkSkCredentials,
    params: Params | None = None,
    *,
    project_id: str | None = None,
    now: datetime | None = None,
) -> Reply:
    signed_url, headers = signed(url, credentials, params, project_id=project_id, now=now)
    return get_url(signed_url, headers)


def login_body(domain: str, user: str, password: str, project_id: str) -> dict[str, Any]:
    """An IAM password-identity request body with project scope."""
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": domain}}
                },
            },
            "scope": {"project": {"id": project_id}},
        }
    }


async def apost(session: aiohttp.ClientSession, url: str, body: bytes) -> Reply:
    headers = {"Content-Type": "application/json;charset=utf8"}
    async with session.post(url, data=body, headers=headers) as response:
        data = await response.read()
        return Reply(response.status, CIMultiDictProxy(CIMultiDict(response.headers)), data)


def post(url: str, body: bytes | dict[str, Any]) -> Reply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)

    async def main() -> Reply:
        async with aiohttp.ClientSession() as session:
            return await apost(session, url, data)

    return asyncio.run(main())


def project_path(project_id: str) -> str:
    return f"/v5/{quote(project_id, safe='')}/image/local-repositories"
