"""A small HSS-like server for behaviours the simulator has no fault for.

It serves ``GET /v5/{project_id}/image/local-repositories`` from fixed lists of records (the
offset/limit paging of the real API) and lets a test decide, per request, to answer
differently: trickle the body a byte at a time, fail with an error body, and so on. It also
answers ``POST /v3/auth/tokens`` like IAM. Runs in a thread with its own event loop, on
127.0.0.1 and a free port, so the CLI, in the test's process or a child, can reach it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Answer = Callable[["Request"], Awaitable[web.StreamResponse | None]]
"""Decides an answer for one page request; ``None``: serve the page normally."""


@dataclass(frozen=True, slots=True)
class Request:
    project_id: str
    offset: int
    limit: int
    attempt: int
    """How many times this project and offset were asked for, this one included."""
    http: web.Request


@dataclass
class TinyServer:
    inventory: dict[str, list[Any]]
    answer: Answer | None = None
    iam_tokens: list[str] = field(default_factory=list)
    """Tokens issued by POST /v3/auth/tokens, in order."""
    requests: list[tuple[str, int]] = field(default_factory=list)
    base_url: str = ""

    def page_body(self, project_id: str, offset: int, limit: int) -> bytes:
        records = self.inventory.get(project_id, [])
        page = {"total_num": len(records), "data_list": records[offset : offset + limit]}
        return json.dumps(page).encode()  # the stdlib: it nests deeper than orjson writes

    async def _page(self, http: web.Request) -> web.StreamResponse:
        project_id = http.match_info["project_id"]
        offset = int(http.query.get("offset", "0"))
        limit = int(http.query.get("limit", "10"))
        self.requests.append((project_id, offset))
        attempt = self.requests.count((project_id, offset))
        if self.answer is not None:
            special = await self.answer(Request(project_id, offset, limit, attempt, http))
            if special is not None:
                return special
        return web.Response(
            body=self.page_body(project_id, offset, limit), content_type="application/json"
        )

    async def _iam(self, http: web.Request) -> web.Response:
        token = "MIIissued-" + secrets.token_urlsafe(32)
        self.iam_tokens.append(token)
        body = {"token": {"expires_at": "2099-01-01T00:00:00.000000Z"}}
        return web.json_response(body, status=201, headers={"X-Subject-Token": token})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v5/{project_id}/image/local-repositories", self._page)
        app.router.add_post("/v3/auth/tokens", self._iam)
        return app


async def trickle(http: web.Request, body: bytes, every_s: float) -> web.StreamResponse:
    """The whole Content-Length announced, then the body one byte every ``every_s`` seconds."""
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))}
    )
    await response.prepare(http)
    try:
        for index in range(len(body)):
            await response.write(body[index : index + 1])
            await asyncio.sleep(every_s)
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client gave up on us: what the test wants
    return response


def error(status: int, error_code: str, error_msg: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error_code": error_code, "error_msg": error_msg},
        status=status,
        headers={"X-Request-Id": secrets.token_hex(8), **headers},
    )


def records(prefix: str, count: int) -> list[dict[str, Any]]:
    """Plain, valid records with distinct natural keys."""
    return [
        {
            "image_id": f"{prefix}-{n:05d}",
            "image_name": f"registry.example/{prefix}",
            "image_version": f"v{n}",
            "image_digest": f"sha256:{n:064x}",
            "host_id": f"host-{n % 7}",
            "agent_id": f"agent-{n % 7}",
            "image_size": 1000 + n,
            "scan_status": "success",
        }
        for n in range(count)
    ]


@contextmanager
def tiny_server(
    inventory: dict[str, list[Any]], answer: Answer | None = None
) -> Iterator[TinyServer]:
    server = TinyServer(inventory, answer)
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the tiny server did not start")
    try:
        yield server
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
