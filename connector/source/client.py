"""One page at a time over the run's transport: what an answer of the HSS API means.

Connection failures are translated by :mod:`connector.source.transport`; this module turns every
answer that is not a page into a ``ConnectorError`` subclass that names the project, the
offset, the HTTP status, the API's ``error_code`` and ``error_msg`` and the request id, and
says whether a retry can help.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from yarl import URL

from connector.errors import (
    ApiError,
    AuthError,
    InvalidRequestError,
    MalformedResponseError,
    ServerError,
    ThrottledError,
    TransportError,
    preview,
)
from connector.redaction import Redactor
from connector.settings.names import setting
from connector.shape.page import PageRecords
from connector.source.auth import Authenticator
from connector.source.decoding import PageDecoder
from connector.source.retry import budget_left
from connector.source.signing import QueryValue, canonical_query_string
from connector.source.transport import Deadline, Transport, Where

__all__ = ["USER_AGENT", "HssClient", "Page", "PageRequest", "PageSource", "parse_page"]

USER_AGENT = "hss-image-connector/0.1 (+aiohttp)"
PATH = "/v5/{project_id}/image/local-repositories"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page to ask for: the project, its offset and limit, and the filters."""

    project_id: str
    offset: int
    limit: int
    params: tuple[tuple[str, QueryValue], ...] = ()

    def query(self) -> list[tuple[str, QueryValue]]:
        return [*self.params, ("offset", self.offset), ("limit", self.limit)]


@dataclass(frozen=True, slots=True)
class Page:
    """One 200 answer: its records and what the crawl needs to know about it."""

    request: PageRequest
    total_num: int
    records: list[Any]
    request_id: str | None
    fetched_at_ms: int
    typed: bool = False
    """The records are ``decoding.TypedRecord``s, checked against the schema while decoded;
    else plain JSON values, to be checked record by record."""

    def hand_off(self, start: int, records: list[Any]) -> PageRecords:
        """``records``, found from index ``start`` of this page, for the shape stage."""
        return PageRecords(
            records, self.request.offset + start, self.request_id, self.fetched_at_ms, self.typed
        )


class PageSource(Protocol):
    """The seam between paging logic and the network: get this page."""

    async def get_page(self, request: PageRequest) -> Page: ...


class HssClient:
    """Reads pages of the local image list over the run's transport."""

    def __init__(
        self,
        transport: Transport,
        endpoint: str,
        auth: Authenticator,
        *,
        request_timeout_s: float | None = None,
        redactor: Redactor | None = None,
        decoder: PageDecoder | None = None,
    ) -> None:
        """``decoder``: reads the bodies that fit the schema exactly into typed records;
        without it every body is parsed into plain values."""
        self._transport = transport
        self._decoder = decoder
        self._endpoint = endpoint.rstrip("/")
        self._auth = auth
        self._request_timeout_s = request_timeout_s
        self._redactor = redactor

    def url_for(self, request: PageRequest) -> URL:
        path = PATH.format(project_id=quote(request.project_id, safe=""))
        query = canonical_query_string(request.query())
        return URL(f"{self._endpoint}{path}?{query}", encoded=True)

    async def get_page(self, request: PageRequest) -> Page:
        renewed = False
        while True:
            try:
                return await self._get_once(request)
            except AuthError as error:
                if renewed or error.error_code not in ("APIG.0307", "APIGW.0307"):
                    raise
                renewed = True
                if not await self._auth.renew(request.project_id):
                    raise

    async def _get_once(self, request: PageRequest) -> Page:
        url = self.url_for(request)
        headers = await self._auth.headers(
            method="GET", url=url, query=request.query(), project_id=request.project_id
        )
        headers.setdefault("Accept", "application/json")
        headers["User-Agent"] = USER_AGENT
        if self._redactor is not None:  # tokens from IAM are secrets too, wherever they show
            self._redactor.add(headers.get("X-Auth-Token"), headers.get("X-Security-Token"))
        response = await self._transport.send(
            "GET",
            url,
            headers=headers,
            deadline=self._deadline(request),
            where=Where(request.project_id, request.offset),
        )
        status = response.status
        request_id = response.headers.get("X-Request-Id")
        if status == 200:
            content_type = response.headers.get("Content-Type", "")
            return parse_page(request, response.body, request_id, content_type, self._decoder)
        raise _api_error(
            status,
            response.body,
            request_id,
            response.headers.get("Retry-After"),
            _Where(request.project_id, request.offset),
        )

    def _deadline(self, request: PageRequest) -> Deadline:
        """How long this attempt may take: the request timeout, or what is left of the
        page's retry budget when that is shorter (so a page never outlives its budget)."""
        seconds, final = self._request_timeout_s, False
        reason = (
            f"no complete answer within {setting('request_timeout')} {seconds or 0:g}s (the body kept "
            "arriving too slowly: the read timeout only fires when nothing arrives)"
        )
        budget = budget_left()
        if budget is not None and (seconds is None or budget.left() < seconds):
            seconds, final = budget.left(), True
            reason = (
                f"cut off at the end of the page's retry budget ({setting('max_retry_time')} "
                f"{budget.seconds:g}s) before a complete answer arrived"
            )
            if seconds <= 0:
                raise TransportError(
                    f"the page's retry budget ({setting('max_retry_time')} {budget.seconds:g}s) "
                    "was spent before this request could be sent (waiting for the rate limit or "
                    f"a free connection); raise {setting('max_retry_time')} or lower "
                    f"{setting('parallel_projects')}",
                    project_id=request.project_id,
                    offset=request.offset,
                )
        return Deadline(seconds, reason, final)


def parse_page(
    request: PageRequest,
    body: bytes,
    request_id: str | None,
    content_type: str,
    decoder: PageDecoder | None,
) -> Page:
    """A 200 answer's page: typed when the decoder takes the body, else plain values."""
    decoded = decoder.decode(body) if decoder is not None else None
    if decoded is not None:
        total, records = decoded.total_num, decoded.records
    else:
        total, records = _plain_body(request, body, request_id, content_type)
    if len(records) > request.limit:
        raise _malformed(
            request,
            request_id,
            f"the page holds {len(records)} records, more than limit={request.limit}",
        )
    return Page(
        request=request,
        total_num=total,
        records=records,
        request_id=request_id,
        fetched_at_ms=time.time_ns() // 1_000_000,
        typed=decoded is not None,
    )


def _malformed(
    request: PageRequest, request_id: str | None, message: str
) -> MalformedResponseError:
    """A 200 answer that is not a page: named by project, offset and request id."""
    return MalformedResponseError(
        message,
        request_id=request_id,
        project_id=request.project_id,
        offset=request.offset,
        status=200,
    )


def _plain_body(
    request: PageRequest, body: bytes, request_id: str | None, content_type: str
) -> tuple[int, list[Any]]:
    """``total_num`` and the records of a body parsed into plain JSON values."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        kind = "an HTML page" if "html" in content_type.lower() else "not valid JSON"
        start = preview(body[:200].decode("utf-8", "replace"), 120)
        raise _malformed(
            request, request_id, f"the body is {kind} ({exc}); starts with {start!r}"
        ) from None
    if not isinstance(data, dict):
        raise _malformed(
            request, request_id, f"the body is JSON but not an object: {type(data).__name__}"
        )
    total = data.get("total_num")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise _malformed(request, request_id, f"'total_num' is missing or not a count: {total!r}")
    records = data.get("data_list")
    if records is None:
        records = []
    if not isinstance(records, list):
        raise _malformed(
            request, request_id, f"'data_list' is not a list but {type(records).__name__}"
        )
    return total, records


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _api_error(
    status: int,
    body: bytes,
    request_id: str | None,
    retry_after: str | None,
    where: _Where,
) -> ApiError:
    error_code: str | None = None
    error_msg: str | None = None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error_code = _text(data.get("error_code"))
        error_msg = _text(data.get("error_msg"))
        request_id = request_id or _text(data.get("request_id"))
    elif body:
        error_msg = body[:500].decode("utf-8", "replace")
    context: dict[str, Any] = {
        "project_id": where.project_id,
        "offset": where.offset,
        "status": status,
        "error_code": error_code,
        "error_msg": error_msg,
        "request_id": request_id,
    }
    error: ApiError
    if status == 429:
        error = ThrottledError(
            f"the gateway throttled the request; lower {setting('rate')}", **context
        )
        error.retry_after = _retry_after_seconds(retry_after)
    elif status == 401:
        error = AuthError(
            "the credentials were rejected; check the token or access key (they are not "
            "retried: repeated bad signatures lock an access key)",
            **context,
        )
    elif status == 403:
        error = AuthError("permission denied for this project", **context)
    elif status >= 500:
        error = ServerError("the server failed", **context)
        error.retry_after = _retry_after_seconds(retry_after)
    elif status == 400 and error_code in ("HSS.0010", "HSS.0013"):
        error = AuthError("access denied for this project", **context)
    elif 400 <= status < 500:
        error = InvalidRequestError("the server rejected the request", **context)
    else:
        error = ApiError(f"unexpected HTTP status {status}", **context)
    return error


@dataclass(frozen=True, slots=True)
class _Where:
    """The page an API error belongs to."""

    project_id: str
    offset: int


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
