"""The transport: one session, and every connection failure as the connector's own error.

Each test runs a small server on 127.0.0.1 (aiohttp's, or raw asyncio when the bytes on the
wire must be wrong on purpose) and sends through ``open_transport`` over real sockets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from connector.errors import TransportError
from connector.settings.config import Auth, FetchSettings, IamPassword, Secret
from connector.source.auth import authenticator_for
from connector.source.proxies import proxy_for
from connector.source.transport import Deadline, Transport, Where, open_transport

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Raw = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def served(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_served(handler: Raw) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def refused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def send(url: str, fetch: FetchSettings | None = None, **kw: Any) -> Any:
    async with open_transport(fetch or FetchSettings()) as transport:
        return await transport.send("GET", URL(url), headers={}, **kw)


def fail(url: str, fetch: FetchSettings | None = None, **kw: Any) -> TransportError:
    with pytest.raises(TransportError) as caught:
        asyncio.run(send(url, fetch, **kw))
    return caught.value


def test_any_answer_comes_back_whole_whatever_its_status() -> None:
    seen: list[tuple[str, bytes, str | None]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, await request.read(), request.headers.get("X-Mine")))
        return web.Response(status=503, body=b'{"error_code":"X"}', headers={"Retry-After": "3"})

    async def scenario() -> Any:
        async with served(handler) as base, open_transport(FetchSettings()) as transport:
            return await transport.send(
                "POST", URL(f"{base}/v3/x"), headers={"X-Mine": "yes"}, body=b"hello"
            )

    response = asyncio.run(scenario())
    assert (response.status, response.body) == (503, b'{"error_code":"X"}')
    assert response.headers.get("retry-after") == "3"  # case-insensitive
    assert seen == [("POST", b"hello", "yes")]


def test_a_refused_connection_is_a_retryable_transport_error_naming_where() -> None:
    port = refused_port()
    error = fail(f"http://127.0.0.1:{port}/v5/p/x", where=Where("p1", 400))
    assert error.retryable
    assert f"could not connect to 127.0.0.1:{port}" in str(error)
    assert (error.project_id, error.offset) == ("p1", 400)
    assert isinstance(error.__cause__, OSError)  # the aiohttp error, kept as the cause


@pytest.mark.slow
def test_a_deadline_cuts_a_slow_answer_off_with_the_callers_reason() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.Response(body=b"late")

    async def scenario(final: bool) -> TransportError:
        async with served(slow) as base:
            deadline = Deadline(0.2, "past the deadline we set", final=final)
            try:
                await send(f"{base}/x", deadline=deadline)
            except TransportError as error:
                return error
        raise AssertionError("the slow answer was not cut off")

    retried = asyncio.run(scenario(final=False))
    assert "past the deadline we set" in str(retried) and retried.retryable
    last = asyncio.run(scenario(final=True))
    assert "past the deadline we set" in str(last) and not last.retryable


def test_silence_after_the_headers_trips_the_read_timeout_of_the_settings() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(2)
        writer.close()

    async def scenario() -> TransportError:
        async with raw_served(stall) as base:
            try:
                await send(f"{base}/x", FetchSettings(read_timeout_s=0.3))
            except TransportError as error:
                return error
        raise AssertionError("the stalled answer did not time out")

    error = asyncio.run(scenario())
    assert "no data arrived within read_timeout" in str(error) and error.retryable


def test_a_body_cut_short_is_a_transport_error() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"total_num"')
        await writer.drain()
        writer.close()

    async def scenario() -> TransportError:
        async with raw_served(short) as base:
            try:
                await send(f"{base}/x")
            except TransportError as error:
                return error
        raise AssertionError("the short body was accepted")

    error = asyncio.run(scenario())
    assert "cut short" in str(error) and error.retryable


def test_requests_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def scenario() -> Any:
        async with raw_served(proxy) as proxy_url:
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            proxy_for.cache_clear()
            return await send("http://hss.invalid:8080/v5/p/x?offset=0")

    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        response = asyncio.run(scenario())
    finally:
        proxy_for.cache_clear()
    assert (response.status, response.body) == (200, b"ok")
    assert lines == [b"GET http://hss.invalid:8080/v5/p/x?offset=0 HTTP/1.1"]


def test_iam_goes_through_the_transport_named_and_without_the_password() -> None:
    port = refused_port()
    password = "Sup3r-s3cret-pw"
    auth = Auth(
        iam=IamPassword(
            user="u",
            password=Secret(password),
            domain="d",
            iam_endpoint=f"http://127.0.0.1:{port}",
        )
    )

    async def scenario() -> TransportError:
        async with open_transport(FetchSettings()) as transport:
            assert isinstance(transport, Transport)
            authenticator = authenticator_for(auth, transport, "http://127.0.0.1:1")
            try:
                await authenticator.headers(
                    method="GET", url=URL("http://127.0.0.1:1/x"), query=(), project_id="p9"
                )
            except TransportError as error:
                return error
        raise AssertionError("IAM was reached on a refused port")

    error = asyncio.run(scenario())
    assert f"could not reach IAM at http://127.0.0.1:{port}/v3/auth/tokens" in str(error)
    assert f"could not connect to 127.0.0.1:{port}" in str(error)
    assert error.project_id == "p9" and error.retryable
    assert password not in str(error) and password not in repr(error.args)
