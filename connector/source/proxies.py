"""Which HTTP proxy the environment names for a URL (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)."""

from __future__ import annotations

import urllib.request
from functools import cache
from urllib.parse import urlsplit

__all__ = ["proxy_for"]


@cache
def proxy_for(url: str) -> str | None:
    """The proxy for ``url``'s scheme unless NO_PROXY exempts its host; resolved once.

    aiohttp's ``trust_env`` would read the environment and ~/.netrc again on every request
    (about 6% of the connector's CPU), so the session does not trust the environment and
    each request names its proxy instead.
    """
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)
