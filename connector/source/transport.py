"""The connector's one door to the network: the HTTP session and what its failures mean.

    open_transport(fetch) -> Transport        one pooled aiohttp session for the run
    Transport.send(method, url, ...) -> Response

Everything that touches aiohttp is here: the session with its limits (none in the pool:
requests in flight are capped per endpoint and credential by ``ratelimit.RateLimiter``),
its timeouts (``--connect-timeout``, ``--read-timeout``; the per-request deadline is the
caller's), its proxies (``proxies.proxy_for``, read once per host instead of aiohttp's
``trust_env`` on every request) and the translation of every aiohttp failure into a
:class:`~connector.errors.TransportError` that says what went wrong, where. The HSS client
and the IAM calls both send through it; what an HTTP *status* means is theirs to say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from connector.errors import TransportError
from connector.settings.config import FetchSettings
from connector.settings.names import setting
from connector.source.proxies import proxy_for

__all__ = ["Deadline", "Response", "Transport", "Where", "describe_failure", "open_transport"]


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: the status, the whole body and the headers (case-insensitive)."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Deadline:
    """How long one request may take, connecting to last byte, and what to say when not."""

    seconds: float | None
    reason: str
    final: bool = False
    """Expiry ends the caller's whole budget: the error is then not retryable."""


@dataclass(frozen=True, slots=True)
class Where:
    """Whom a failure concerns, for its error: a project, an offset, a service's name."""

    project_id: str | None = None
    offset: int | None = None
    service: str | None = None
    """Named in the message (``could not reach IAM at ...``); None for the HSS endpoint."""


class Transport:
    """Sends requests over one session; raises only ``TransportError`` for failures."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy(self, url: URL) -> str | None:
        origin = (url.scheme, url.raw_authority)
        if origin not in self._proxies:
            self._proxies[origin] = proxy_for(f"{url.scheme}://{url.raw_authority}/")
        return self._proxies[origin]

    async def send(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        deadline: Deadline | None = None,
        where: Where = Where(),
    ) -> Response:
        """Send one request and read the whole answer (no redirects followed)."""
        seconds = deadline.seconds if deadline is not None else None
        try:
            async with asyncio.timeout(seconds) as scope:
                async with self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    proxy=self._proxy(url),
                ) as response:
                    content = await response.read()
                    return Response(response.status, content, response.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            expired = deadline is not None and scope.expired()
            reason = deadline.reason if expired and deadline else describe_failure(exc, url)
            if where.service:
                reason = f"could not reach {where.service} at {url.with_query(None)}: {reason}"
            error = TransportError(reason, project_id=where.project_id, offset=where.offset)
            if expired and deadline is not None and deadline.final:
                error.retryable = False  # the caller's budget is spent: nothing to retry in
            raise error from exc


def describe_failure(exc: BaseException, url: URL) -> str:
    """What went wrong with the connection, in words, for a TransportError."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"could not connect to {url.host}:{url.port} within {setting('connect_timeout')}"
    if isinstance(exc, TimeoutError):
        return f"no data arrived within {setting('read_timeout')}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the response body was cut short ({exc})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"could not connect to {url.host}:{url.port} ({exc.os_error})"
    return f"the connection failed: {type(exc).__name__}: {exc}"


@contextlib.asynccontextmanager
async def open_transport(fetch: FetchSettings) -> AsyncIterator[Transport]:
    """The run's one session: no pool cap (the limiter is the one cap), the connect and
    read timeouts of ``fetch``, DNS answers kept 5 minutes, proxies per host."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=fetch.connect_timeout_s, sock_read=fetch.read_timeout_s
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,  # see proxies.py
    ) as session:
        yield Transport(session)
