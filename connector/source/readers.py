"""What a run reads through, built in one place: the sync, the dry run (``job.check``) and
the Airflow hook all open it here.

    async with open_readers(config, redactor=redactor) as readers:
        readers.config          # the projects to read (IAM's list, for all_projects)
        readers.fetcher(url)    # pages of that endpoint: limiter, retries
        readers.client(url)     # one page, no retries (the dry run)

One transport (the aiohttp session) for the run; per endpoint an authenticator and a
client; and one limiter per endpoint and credential, shared by every project read there
(the gateway throttles per user). A config over every project (``all_projects``) is
resolved here, once, by listing the credential's projects through IAM (``discovery``):
nothing else calls discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from connector.redaction import Redactor
from connector.settings.config import Config
from connector.shape.schema import load_spec
from connector.source.auth import authenticator_for
from connector.source.client import HssClient, PageSource
from connector.source.decoding import PageDecoder
from connector.source.fetcher import PageFetcher
from connector.source.limiter import RateLimiter
from connector.source.transport import Transport, open_transport

if TYPE_CHECKING:
    from connector.source.discovery import Discovery

__all__ = ["Readers", "open_readers"]

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    client: PageSource
    limiter: RateLimiter
    fetcher: PageFetcher


@dataclass(frozen=True, slots=True)
class Readers:
    """The readers of one run, by endpoint; ``config`` lists the projects they read."""

    config: Config
    discovery: Discovery | None
    """What IAM listed, when ``config`` was given as every project of a credential."""
    _endpoints: dict[str, _Endpoint]

    def fetcher(self, endpoint: str) -> PageFetcher:
        return self._endpoints[endpoint].fetcher

    def client(self, endpoint: str) -> PageSource:
        return self._endpoints[endpoint].client

    def limiter(self, endpoint: str) -> RateLimiter:
        return self._endpoints[endpoint].limiter

    def limiters(self) -> dict[str, RateLimiter]:
        """Each limiter once, by the first endpoint that uses it."""
        seen: dict[int, tuple[str, RateLimiter]] = {}
        for endpoint, built in self._endpoints.items():
            seen.setdefault(id(built.limiter), (endpoint, built.limiter))
        return dict(seen.values())


@contextlib.asynccontextmanager
async def open_readers(
    config: Config,
    *,
    redactor: Redactor,
    sleep: Sleep = asyncio.sleep,
    pages: PageSource | None = None,
) -> AsyncIterator[Readers]:
    """Build the readers of ``config`` (listing its projects first when it asks for all of
    them); closed on exit. ``pages`` replaces every endpoint's client (tests of the paging
    logic); the transport is then opened only to list projects."""
    async with contextlib.AsyncExitStack() as stack:
        transport: Transport | None = None
        if pages is None or config.all_projects:
            transport = await stack.enter_async_context(open_transport(config.fetch))
        discovery = None
        if config.all_projects:
            assert transport is not None
            discovery = await _discover(config, transport, redactor, sleep)
            config = replace(config, projects=discovery.project_ids, all_projects=False)
        if pages is None:
            await asyncio.to_thread(load_spec)  # the schema file, read once off the event loop
        yield Readers(config, discovery, _build(config, transport, pages, redactor, sleep))


async def _discover(
    config: Config, transport: Transport, redactor: Redactor, sleep: Sleep
) -> Discovery:
    # imported here: only a run over every project lists them (and pays for the import)
    from connector.source.discovery import discover_projects

    return await discover_projects(config, transport, redactor=redactor, sleep=sleep)


def _build(
    config: Config,
    transport: Transport | None,
    pages: PageSource | None,
    redactor: Redactor,
    sleep: Sleep,
) -> dict[str, _Endpoint]:
    decoder = PageDecoder(load_spec()) if pages is None else None
    limiters: dict[tuple[str, str], RateLimiter] = {}
    built: dict[str, _Endpoint] = {}
    for endpoint in sorted({t.endpoint for t in config.targets}):
        if pages is None:
            assert transport is not None
            auth = authenticator_for(config.auth, transport, endpoint)
            client: PageSource = HssClient(
                transport,
                endpoint,
                auth,
                request_timeout_s=config.fetch.request_timeout_s,
                redactor=redactor,
                decoder=decoder,
            )
            identity = auth.identity
        else:
            client, identity = pages, "test"
        # the gateway throttles per user: one bucket and one cap on requests in flight per
        # endpoint and credential, shared by all its projects
        limiter = limiters.setdefault(
            (endpoint, identity),
            RateLimiter(
                config.fetch.rate,
                config.fetch.burst,
                max_in_flight=config.fetch.concurrency,
                sleep=sleep,
            ),
        )
        fetcher = PageFetcher(client, limiter, config.fetch.retry, sleep=sleep)
        built[endpoint] = _Endpoint(client, limiter, fetcher)
    return built
