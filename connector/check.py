"""Reach each project once with the run's credentials, writing nothing.

    probe(config) -> [ProbeResult per project]

One small request (offset 0, ``limit`` records) per project, no retries: it answers "would
a sync get in?" quickly, with the API's own error (``error_code``, HTTP status) when it
would not. Used by ``HssHook.test_connection`` (the Airflow UI's "Test" button and
``airflow connections test``) and by ``hss-images check``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .auth import authenticator_for
from .client import HssClient, PageRequest
from .config import Config, Target
from .errors import ConnectorError
from .redaction import Redactor
from .transport import open_transport

__all__ = ["PROBE_LIMIT", "ProbeResult", "probe", "probe_async"]

PROBE_LIMIT = 10
"""Records asked for by a probe: the API's smallest page."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one project's probe found; ``error`` is redacted."""

    project_id: str
    endpoint: str
    total_num: int | None = None
    error_type: str | None = None
    error: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.error_type is None


async def probe_async(
    config: Config,
    *,
    projects: int | None = None,
    limit: int = PROBE_LIMIT,
    redactor: Redactor | None = None,
) -> list[ProbeResult]:
    """Probe the first ``projects`` projects of ``config`` (all by default), in order.

    Never raises a ``ConnectorError``: each failure is the result of its project. The
    requests share one session and at most ``config.fetch.concurrency`` are in flight.
    """
    redactor = redactor if redactor is not None else Redactor()
    redactor.add(*config.auth.secrets())
    targets = config.targets[:projects] if projects is not None else config.targets
    params = tuple(config.filters.params())
    in_flight = asyncio.Semaphore(config.fetch.concurrency)
    results: dict[str, ProbeResult] = {}
    async with open_transport(config.fetch) as transport:
        clients = {
            endpoint: HssClient(
                transport,
                endpoint,
                authenticator_for(config.auth, transport, endpoint),
                request_timeout_s=config.fetch.request_timeout_s,
                redactor=redactor,
            )
            for endpoint in sorted({t.endpoint for t in targets})
        }

        async def one(target: Target) -> None:
            request = PageRequest(target.project_id, 0, limit, params)
            async with in_flight:
                try:
                    page = await clients[target.endpoint].get_page(request)
                except ConnectorError as error:
                    results[target.project_id] = ProbeResult(
                        target.project_id,
                        target.endpoint,
                        error_type=type(error).__name__,
                        error=redactor(str(error)),
                        exit_code=error.exit_code,
                    )
                    return
            results[target.project_id] = ProbeResult(
                target.project_id, target.endpoint, total_num=page.total_num
            )

        async with asyncio.TaskGroup() as group:
            for target in targets:
                group.create_task(one(target))
    return [results[t.project_id] for t in targets]


def probe(
    config: Config, *, projects: int | None = None, limit: int = PROBE_LIMIT
) -> list[ProbeResult]:
    """``probe_async`` from synchronous code (not inside a running event loop)."""
    return asyncio.run(probe_async(config, projects=projects, limit=limit))
