"""Credentials -> request headers. The client calls one method; how is up to the scheme.

- ``TokenAuth``: X-Auth-Token (a token from HSS_AUTH_TOKEN or --token-file).
- ``AkSkAuth``: SDK-HMAC-SHA256 request signing, as the provider's SDKs do it.
- ``IamAuth``: project-scoped IAM tokens from a password identity, cached until shortly
  before they expire and renewed once when the gateway says APIG.0307; and a domain-scoped
  one for IAM's own calls (project discovery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import orjson
from yarl import URL

from connector.errors import AuthError, ConfigError, preview
from connector.settings.config import Auth, IamPassword, Secret, iam_endpoint_for
from connector.settings.names import setting
from connector.source.signing import AkSkCredentials, QueryValue, sign_request
from connector.source.transport import Transport, Where

__all__ = [
    "AkSkAuth",
    "Authenticator",
    "IamAuth",
    "TokenAuth",
    "authenticator_for",
    "iam_error_fields",
]

log = logging.getLogger("connector")


class Authenticator(Protocol):
    """Adds credentials to one request."""

    identity: str
    """Who the gateway throttles: requests of one identity share one rate limit."""

    async def headers(
        self, *, method: str, url: URL, query: Sequence[tuple[str, QueryValue]], project_id: str
    ) -> dict[str, str]: ...

    async def renew(self, project_id: str) -> bool:
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

    async def renew(self, project_id: str) -> bool:
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

    async def renew(self, project_id: str) -> bool:
        return False

    def __repr__(self) -> str:
        return f"AkSkAuth({self._credentials!r})"


class IamAuth:
    """Project-scoped tokens from ``POST /v3/auth/tokens`` with a password identity."""

    RENEW_BEFORE_S = 600.0

    def __init__(
        self,
        identity: IamPassword,
        transport: Transport,
        hss_endpoint: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        endpoint = identity.iam_endpoint or iam_endpoint_for(hss_endpoint)
        if endpoint is None:
            raise ConfigError(f"no IAM endpoint for {hss_endpoint}; give {setting('iam_endpoint')}")
        self._identity = identity
        self._transport = transport
        self.endpoint = endpoint
        self._url = URL(f"{endpoint}/v3/auth/tokens")
        self._clock = clock
        self._tokens: dict[str, tuple[Secret, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.identity = f"iam:{identity.domain}/{identity.user}"
        self.issued = 0

    async def headers(
        self, *, method: str, url: URL, query: Sequence[tuple[str, QueryValue]], project_id: str
    ) -> dict[str, str]:
        return {"X-Auth-Token": (await self._token(project_id)).reveal()}

    async def renew(self, project_id: str) -> bool:
        self._tokens.pop(project_id, None)
        await self._token(project_id)
        return True

    async def _token(self, project_id: str) -> Secret:
        lock = self._locks.setdefault(project_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(project_id)
            if cached is not None and self._clock() < cached[1]:
                return cached[0]
            token, expires = await self._issue({"project": {"id": project_id}}, project_id)
            # renew 10 min early, or a tenth of the lifetime early for a short-lived token
            margin = min(self.RENEW_BEFORE_S, max(0.0, expires - self._clock()) / 10)
            self._tokens[project_id] = (token, expires - margin)
            return token

    async def domain_token(self) -> Secret:
        """A token scoped to the user's account (domain): what IAM's own calls take, such
        as listing the projects (``GET /v3/auth/projects``) before any project is known."""
        token, _ = await self._issue({"domain": {"name": self._identity.domain}}, None)
        return token

    async def _issue(
        self, scope: dict[str, dict[str, str]], project_id: str | None
    ) -> tuple[Secret, float]:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._identity.user,
                            "password": self._identity.password.reveal(),
                            "domain": {"name": self._identity.domain},
                        }
                    },
                },
                "scope": scope,
            }
        }
        response = await self._transport.send(
            "POST",
            self._url,
            headers={"Content-Type": "application/json"},
            body=orjson.dumps(body),
            where=Where(project_id=project_id, service="IAM"),
        )
        text = response.text()
        token = response.headers.get("X-Subject-Token")
        request_id = response.headers.get("X-Request-Id")
        status = response.status
        if status not in (200, 201) or not token:
            code, msg = iam_error_fields(text)
            raise AuthError(
                f"IAM refused a token for user {self._identity.user!r} in domain "
                f"{self._identity.domain!r}",
                project_id=project_id,
                status=status,
                error_code=code,
                error_msg=msg,
                request_id=request_id,
            )
        self.issued += 1
        if project_id is None:
            log.info("obtained an IAM token for account %s", self._identity.domain)
        else:
            log.info("project %s: obtained an IAM token", project_id)
        return Secret(token), self._expiry(text)

    def _expiry(self, text: str) -> float:
        """``token.expires_at`` of the IAM answer; tokens last 24 hours when it is missing."""
        try:
            expires = orjson.loads(text)["token"]["expires_at"]
            return datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return self._clock() + 24 * 3600

    def __repr__(self) -> str:
        return f"IamAuth(user={self._identity.user!r}, password='***')"


def iam_error_fields(text: str) -> tuple[str | None, str | None]:
    """``(error_code, error_msg)`` of an IAM error body: Keystone's ``{"error": {"code",
    "message"}}`` or the ``{"error_code", "error_msg"}`` of the provider's newer APIs."""
    try:
        data = orjson.loads(text)
        error = data.get("error", data) if isinstance(data, dict) else {}
        code = str(error.get("code") or error.get("error_code") or "") or None
        msg = str(error.get("message") or error.get("error_msg") or "") or None
    except (orjson.JSONDecodeError, AttributeError):
        return None, preview(text, 200) or None
    return code, msg


def authenticator_for(
    auth: Auth, transport: Transport | None = None, endpoint: str = ""
) -> Authenticator:
    if auth.token is not None:
        return TokenAuth(auth.token)
    if auth.aksk is not None:
        return AkSkAuth(auth.aksk)
    assert auth.iam is not None and transport is not None
    return IamAuth(auth.iam, transport, endpoint)
