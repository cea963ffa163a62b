"""The aiohttp application: ``GET /v5/{project_id}/image/local-repositories`` and the
simulated IAM's ``POST /v3/auth/tokens``, ``GET /v3/auth/projects`` and
``GET /v3/auth/domains`` (see :mod:`connector.simulator.iam`).

A list request goes through the stages of the real service, in its order: route (404
``APIG.0101``), authentication (401 ``APIG.0301`` / ``APIG.0307``), throttling (429
``APIG.0308``), parameter validation (400 ``HSS.0001``), then the backend, where injected
faults may strike, and finally the page, which gateway behaviours (``GatewayConfig``) may
alter when no transport fault corrupts it. Every response carries ``X-Request-Id``; gateway
errors also put ``request_id`` in the body. Latency is added before anything else.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from connector.simulator.auth import Authenticator, AuthError, Identity, authenticator_for
from connector.simulator.config import SimulatorConfig
from connector.simulator.faults import TransportFault, TransportFaults
from connector.simulator.filters import InvalidParameter, PageQuery, parse_page_query
from connector.simulator.gateway import GatewayBehaviours, PageBehaviour
from connector.simulator.iam import (
    ACCOUNT,
    DOMAIN_ID_HEADER,
    SUBJECT_TOKEN_HEADER,
    IamError,
    IamService,
    TokenRegistry,
    domain_id_of,
    domain_list_body,
    project_list_body,
)
from connector.simulator.inventory import Inventory
from connector.simulator.ratelimit import RateLimiter
from connector.simulator.stats import NO_RESPONSE, RequestLogEntry, SimulatorStats

__all__ = [
    "IAM_DOMAINS_ROUTE",
    "IAM_PROJECTS_ROUTE",
    "IAM_ROUTE",
    "ROUTE",
    "STATE",
    "SimulatorState",
    "create_app",
]

ROUTE = "/v5/{project_id}/image/local-repositories"
IAM_ROUTE = "/v3/auth/tokens"
IAM_PROJECTS_ROUTE = "/v3/auth/projects"
IAM_DOMAINS_ROUTE = "/v3/auth/domains"
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
HTML_CONTENT_TYPE = "text/html;charset=UTF-8"
REQUEST_ID_HEADER = "X-Request-Id"

_GATEWAY_503_PAGE = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)
_HTML_ERROR_PAGE = (
    b'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Service notice</title></head>'
    b"<body><h1>The system is busy. Please try again later.</h1></body></html>"
)
_RST_LINGER = struct.pack("ii", 1, 0)
# Faults answered without reading the inventory (they do not count as page requests).
_NO_PAGE_FAULTS = frozenset(
    {TransportFault.HTTP_500, TransportFault.HTTP_503, TransportFault.HTML, TransportFault.RESET}
)


class SimulatorState:
    """Everything a request handler needs; one per application."""

    __slots__ = (
        "authenticator",
        "clock",
        "config",
        "faults",
        "gateway",
        "iam",
        "inventory",
        "limiter",
        "rng",
        "stats",
    )

    def __init__(
        self,
        config: SimulatorConfig,
        inventory: Inventory,
        stats: SimulatorStats,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.inventory = inventory
        self.stats = stats
        self.clock = clock
        registry = TokenRegistry()
        self.iam = IamService(config.iam_users, config.iam_token_ttl_s, registry)
        self.authenticator: Authenticator = authenticator_for(config, registry, clock)
        self.limiter = RateLimiter(config.rate, config.effective_burst, config.rate_per_minute)
        self.faults = TransportFaults(config.faults, config.seed)
        self.gateway = GatewayBehaviours(config.gateway, config.seed)
        self.rng = random.Random(f"{config.seed}\x00server")

    def new_request_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def latency(self) -> float:
        """Seconds to wait before answering: ``latency_ms`` plus uniform ``±jitter_ms``."""
        config = self.config
        if not config.jitter_ms:
            return config.latency_ms / 1000.0
        jitter = self.rng.uniform(-config.jitter_ms, config.jitter_ms)
        return max(0.0, config.latency_ms + jitter) / 1000.0


STATE = web.AppKey("hss_simulator_state", SimulatorState)
_REQUEST_ID = web.RequestKey("hss_simulator_request_id", str)


def _json(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        headers={"Content-Type": JSON_CONTENT_TYPE, REQUEST_ID_HEADER: request_id},
    )


def _gateway_error(status: int, code: str, message: str, request_id: str) -> web.Response:
    body = {"error_code": code, "error_msg": message, "request_id": request_id}
    return _json(status, body, request_id)


def _hss_error(status: int, code: str, message: str, request_id: str) -> web.Response:
    return _json(status, {"error_code": code, "error_msg": message}, request_id)


@web.middleware
async def _gateway(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request[_REQUEST_ID] = state.new_request_id()
    delay = state.latency()
    if delay > 0:
        await asyncio.sleep(delay)
    try:
        response = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return _gateway_error(
            404,
            "APIG.0101",
            "The API does not exist or has not been published in the environment",
            request_id,
        )
    if not response.prepared and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class _Answer(NamedTuple):
    response: web.StreamResponse
    fault: str | None = None
    """The name of the fault injected, if any."""
    error_code: str | None = None
    served: int | None = None
    """Records in the page served (``None``: no readable page)."""
    behaviour: str | None = None
    """The gateway behaviour that altered the page, if any."""
    total_num: int | None = None


async def _list_local_images(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request[_REQUEST_ID]
    project_id = request.match_info["project_id"]
    answer = await _answer(request, state, project_id, request_id)
    response, fault = answer.response, answer.fault
    status = NO_RESPONSE if fault == TransportFault.RESET.value else response.status
    query = request.query
    state.stats.record(
        RequestLogEntry(
            project_id=project_id,
            offset=_int_or_none(query.get("offset")),
            limit=_int_or_none(query.get("limit")),
            status=status,
            fault=fault,
            request_id=request_id,
            error_code=answer.error_code,
            served=answer.served,
            behaviour=answer.behaviour,
            total_num=answer.total_num,
        )
    )
    return response


async def _answer(
    request: web.Request, state: SimulatorState, project_id: str, request_id: str
) -> _Answer:
    """The response to one list request."""
    try:
        identity = await state.authenticator.authenticate(request)
    except AuthError as exc:
        response = _gateway_error(exc.status, exc.error_code, exc.error_msg, request_id)
        return _Answer(response, error_code=exc.error_code)
    if state.limiter.enabled:
        throttled = state.limiter.acquire(identity.key, asyncio.get_running_loop().time())
        if throttled is not None:
            response = _gateway_error(429, "APIG.0308", throttled.message, request_id)
            if state.config.retry_after is not None:
                response.headers["Retry-After"] = str(state.config.retry_after)
            return _Answer(response, error_code="APIG.0308")
    try:
        query = parse_page_query(request.query, max_offset=state.config.max_offset)
    except InvalidParameter as exc:
        return _Answer(_hss_error(400, "HSS.0001", exc.message, request_id), None, "HSS.0001")

    failure = state.faults.project_failure(project_id)
    if failure is not None:
        response = _hss_error(failure.status, failure.error_code, failure.error_msg, request_id)
        return _Answer(response, "project_failure", failure.error_code)
    fault = state.faults.draw(project_id)
    if fault is None:
        return _page(state, project_id, query, request_id)
    if fault in _NO_PAGE_FAULTS:
        error_code = "HSS.0500" if fault is TransportFault.HTTP_500 else None
        return _Answer(_transport_fault(request, fault, request_id), fault.value, error_code)
    if fault is TransportFault.SLOW:
        await asyncio.sleep(state.config.faults.slow_seconds)
        return _page(state, project_id, query, request_id, fault.value)
    body = _page_body(state, project_id, query, gateway=False).body
    if fault is TransportFault.INVALID_JSON:
        body = body.replace(b'"data_list":[', b'"data_list":[,', 1)
        return _Answer(_ok(body, request_id), fault.value)
    assert fault is TransportFault.TRUNCATE, fault
    return _Answer(await _truncated(request, body, request_id), fault.value)


def _page(
    state: SimulatorState,
    project_id: str,
    query: PageQuery,
    request_id: str,
    fault: str | None = None,
) -> _Answer:
    """A page served whole (gateway behaviours may alter it)."""
    page = _page_body(state, project_id, query)
    response = _ok(page.body, request_id)
    return _Answer(response, fault, None, page.served, page.behaviour, page.total_num)


async def _issue_token(request: web.Request) -> web.StreamResponse:
    """``POST /v3/auth/tokens``: 201 with ``X-Subject-Token``, or an IAM-style error."""
    state = request.app[STATE]
    request_id = request[_REQUEST_ID]
    try:
        token, issued, body = state.iam.login(await request.read(), state.clock())
    except IamError as exc:
        state.stats.record_login(None)
        return _json(exc.status, exc.body(), request_id)
    state.stats.record_login(issued.project_id, domain_scoped=issued.project_id is None)
    response = _json(201, body, request_id)
    response.headers[SUBJECT_TOKEN_HEADER] = token
    return response


async def _list_auth_projects(request: web.Request) -> web.StreamResponse:
    """``GET /v3/auth/projects``: the caller's projects, with a token of any scope, or an
    AK/SK signature checked as for HSS that carries the account's ``X-Domain-Id``; a
    refusal in IAM's error shape."""
    state = request.app[STATE]
    request_id = request[_REQUEST_ID]
    try:
        identity = await _iam_caller(request, state)
        sent = request.headers.get(DOMAIN_ID_HEADER)
        if identity.signed and sent != domain_id_of(ACCOUNT):
            reason = "is missing" if sent is None else "is not the access key's account"
            message = f"{DOMAIN_ID_HEADER} {reason}: AK/SK calls to IAM carry the account id"
            raise IamError(401, message)
    except IamError as exc:
        state.stats.record_listing(refused=True)
        return _json(exc.status, exc.body(), request_id)
    state.stats.record_listing(refused=False)
    base_url = f"{request.scheme}://{request.host}"
    body = project_list_body(state.config.iam_projects, base_url, identity.account or ACCOUNT)
    return _json(200, body, request_id)


async def _list_auth_domains(request: web.Request) -> web.StreamResponse:
    """``GET /v3/auth/domains``: the caller's account (no ``X-Domain-Id`` needed)."""
    state = request.app[STATE]
    request_id = request[_REQUEST_ID]
    try:
        identity = await _iam_caller(request, state)
    except IamError as exc:
        return _json(exc.status, exc.body(), request_id)
    base_url = f"{request.scheme}://{request.host}"
    return _json(200, domain_list_body(base_url, identity.account or ACCOUNT), request_id)


async def _iam_caller(request: web.Request, state: SimulatorState) -> Identity:
    """The caller of an IAM GET, as the gateway authenticates it; a token of any scope."""
    try:
        return await state.authenticator.authenticate(request, any_scope=True)
    except AuthError as exc:
        raise IamError(exc.status, exc.error_msg) from None


class _Body(NamedTuple):
    body: bytes
    served: int
    behaviour: str | None
    total_num: int


def _page_body(
    state: SimulatorState, project_id: str, query: PageQuery, *, gateway: bool = True
) -> _Body:
    """``{"total_num":N,"data_list":[...]}`` from the records' cached JSON: the same bytes
    as ``orjson.dumps`` of the whole page, without encoding each record again.

    ``gateway``: draw a page behaviour and apply the page cuts (not for a body a transport
    fault corrupts); a cut names the behaviour when both alter a page. The reported total
    is skewed and jittered in every body.
    """
    behaviours = state.gateway
    shape = behaviours.draw(project_id) if gateway and behaviours.page_enabled else None
    page = state.inventory.serve_page(project_id, query, shape)
    total = page.total
    if behaviours.total_enabled:
        total = behaviours.reported_total(project_id, total)
    behaviour = page.behaviour
    if behaviour is PageBehaviour.MISSING_DATA_LIST:
        return _Body(b'{"total_num":%d}' % total, 0, behaviour.value, total)
    encoded = page.encoded
    if gateway and behaviours.cuts_enabled:
        kept, cut = behaviours.cut(project_id, query.offset, len(encoded), total)
        if cut is not None:
            encoded, behaviour = encoded[:kept], cut
    records = b",".join(encoded)
    body = b'{"total_num":%d,"data_list":[%b]}' % (total, records)
    return _Body(body, len(encoded), None if behaviour is None else behaviour.value, total)


def _ok(body: bytes, request_id: str) -> web.Response:
    headers = {"Content-Type": JSON_CONTENT_TYPE, REQUEST_ID_HEADER: request_id}
    return web.Response(status=200, body=body, headers=headers)


def _transport_fault(
    request: web.Request, fault: TransportFault, request_id: str
) -> web.StreamResponse:
    if fault is TransportFault.HTTP_500:
        return _hss_error(500, "HSS.0500", "Internal server error.", request_id)
    headers = {"Content-Type": HTML_CONTENT_TYPE, REQUEST_ID_HEADER: request_id}
    if fault is TransportFault.HTTP_503:
        return web.Response(status=503, body=_GATEWAY_503_PAGE, headers=headers)
    if fault is TransportFault.HTML:
        return web.Response(status=200, body=_HTML_ERROR_PAGE, headers=headers)
    assert fault is TransportFault.RESET, fault
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:  # SO_LINGER 0: close with a TCP RST rather than a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
        transport.abort()
    return web.Response(status=200)  # never sent: the connection is gone


async def _truncated(request: web.Request, body: bytes, request_id: str) -> web.StreamResponse:
    """Declare the full Content-Length, send half the body, close the connection."""
    response = web.StreamResponse(
        status=200, headers={"Content-Type": JSON_CONTENT_TYPE, REQUEST_ID_HEADER: request_id}
    )
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    transport = request.transport
    if transport is not None:
        transport.close()
    return response


def create_app(
    config: SimulatorConfig | None = None,
    *,
    inventory: Inventory | None = None,
    stats: SimulatorStats | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The simulator as an aiohttp application; its state is ``app[STATE]``.

    ``clock`` (epoch seconds) decides token expiry, signature age and lock-outs.
    """
    config = config or SimulatorConfig()
    state = SimulatorState(config, inventory or Inventory(config), stats or SimulatorStats(), clock)
    app = web.Application(middlewares=[_gateway])
    app[STATE] = state
    app.router.add_get(ROUTE, _list_local_images, allow_head=False)
    app.router.add_post(IAM_ROUTE, _issue_token)
    app.router.add_get(IAM_PROJECTS_ROUTE, _list_auth_projects, allow_head=False)
    app.router.add_get(IAM_DOMAINS_ROUTE, _list_auth_domains, allow_head=False)
    return app
