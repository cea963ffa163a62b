"""Credentials -> request headers. The client calls one method; how is up to the scheme.

TokenAuth   X-Auth-Token (a token from HSS_AUTH_TOKEN or --token-file)
AkSkAuth    SDK-HMAC-SHA256 request signing, as the provider's SDKs do it
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from yarl import URL

from .config import Auth, Secret
from .signing import AkSkCredentials, QueryValue, sign_request

__all__ = ["AkSkAuth", "Authenticator", "TokenAuth", "authenticator_for"]


class Authenticator(Protocol):
    """Adds credentials to one request."""

    identity: str
    """Who the gateway throttles: requests of one identity share one rate limit."""

    async def headers(
        self, *, method: str, url: URL, query: Sequence[tuple[str, QueryValue]], project_id: str
    ) -> dict[str, str]: ...

    async def renew(self) -> bool:
        """Get fresh credentials after the gateway said they expired; False if it cannot."""
        ...


class TokenAuth:
    def __init__(self, token: Secret) -> None:
        self._token = token
        self.identity = f"token:{hash(token.reveal()) & 0xFFFFFFFF:08x}"

    async def headers(
        self, *, method: str, url: URL, query: Sequence[tuple[str, QueryValue]], project_id: str
    ) -> dict[str, str]:
        return {"X-Auth-Token": self._token.reveal()}

    async def renew(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "TokenAuth(token='***')"


class AkSkAuth:
    def __init__(
        self, credentials: AkSkCredentials, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._credentials = credentials
        self._clock = clock or (lambda: datetime.now(UTC))
        self.identity = f"ak:{credentials.access_key}"

    async def headers(
        self, *, method: str, url: URL, query: Sequence[tuple[str, QueryValue]], project_id: str
    ) -> dict[str, str]:
        signed = sign_request(
            method=method,
            scheme=url.scheme,
            host=url.raw_authority,
            path=url.raw_path,
            query=query,
            headers={"Content-Type": "application/json"},
            body=None,
            credentials=self._credentials,
            project_id=project_id,
            now=self._clock(),
        )
        return signed.headers

    async def renew(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"AkSkAuth({self._credentials!r})"


def authenticator_for(auth: Auth) -> Authenticator:
    if auth.token is not None:
        return TokenAuth(auth.token)
    assert auth.aksk is not None
    return AkSkAuth(auth.aksk)
