"""Authentication of simulated API requests, as the provider's API gateway does it.

One seam, :class:`Authenticator`: ``await authenticate(request)`` returns the caller's
:class:`Identity` (the rate-limit key) or raises :class:`AuthError`, which the app turns
into the gateway's 401 body (``error_code``, ``error_msg``, ``request_id``).

:class:`GatewayAuthenticator` accepts, in this order:

- ``X-Auth-Token``: a configured token (identity: the token), a configured expired one
  (``APIG.0307``), or one the simulated IAM issued (:mod:`connector.simulator.iam`):
  valid for its project until it expires (identity: the IAM user). An expired token, and
  one scoped to another project, get ``APIG.0307`` "The token must be updated." (facts.md
  documents ``APIG.0307`` for expired tokens and tokens from another region; project ids
  belong to one region). Anything else: ``APIG.0301``. For IAM's own calls
  (``any_scope=True``: ``GET /v3/auth/projects``) an issued token of any scope, project or
  domain, is valid until it expires.
- ``Authorization: SDK-HMAC-SHA256 ...``: the signature is verified with
  :func:`connector.source.signing.verify_signature` (identity: the access key). A temporary
  access key also needs its ``X-Security-Token``. Every failure is ``APIG.0301``, with the
  reason (malformed, stale, unknown key, mismatch, token) in the message, never the SK.
  After ``lockout_failures`` failures in a row, the access key is locked for ``lockout_s``
  seconds: every request with it is refused, even a correctly signed one. A success
  resets the count.

:class:`OpenAuthenticator` (auth off) accepts everything.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiohttp import web

from connector.simulator.config import SimulatorConfig
from connector.simulator.iam import TokenRegistry
from connector.source.signing import ALGORITHM, SignatureError, verify_signature

__all__ = [
    "AuthError",
    "Authenticator",
    "GatewayAuthenticator",
    "Identity",
    "LockOut",
    "OpenAuthenticator",
    "authenticator_for",
]

TOKEN_HEADER = "X-Auth-Token"
SECURITY_TOKEN_HEADER = "X-Security-Token"
_AUTHORIZATION = "Authorization"
_ACCESS_RE = re.compile(r"\bAccess=([^\s,]+)")
_INCORRECT = "Incorrect IAM authentication information"
TOKEN_MUST_BE_UPDATED = "The token must be updated."


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling; ``key`` is the credential (masked in ``repr``); ``account`` the
    domain of a token the simulated IAM issued (``None``: a configured credential);
    ``signed``: an AK/SK signature was verified."""

    key: str = field(repr=False)
    account: str | None = None
    signed: bool = False


class AuthError(Exception):
    """A refused credential: HTTP status, gateway error code and message."""

    def __init__(self, status: int, error_code: str, error_msg: str) -> None:
        super().__init__(status, error_code, error_msg)
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg


class Authenticator(Protocol):
    async def authenticate(self, request: web.Request, *, any_scope: bool = False) -> Identity:
        """The caller; ``any_scope``: a token of any scope will do (IAM's own calls)."""
        ...


def _masked(access_key: str) -> str:
    return f"{access_key[:4]}***"


def _access_key_of(authorization: str) -> str | None:
    match = _ACCESS_RE.search(authorization)
    return match.group(1) if match else None


class OpenAuthenticator:
    """Auth off: everyone is accepted; the identity is whatever credential was sent."""

    async def authenticate(self, request: web.Request, *, any_scope: bool = False) -> Identity:
        token = request.headers.get(TOKEN_HEADER)
        if token:
            return Identity(token)
        access = _access_key_of(request.headers.get(_AUTHORIZATION, ""))
        return Identity(f"ak:{access}" if access else "anonymous")


class LockOut:
    """Failed signatures in a row per access key; ``limit`` of them lock it for ``seconds``.

    Pure: every call takes ``now``. ``limit=0`` never locks.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def locked_for(self, access_key: str, now: float) -> float:
        """Seconds the key stays locked (0: not locked); an expired lock is lifted."""
        until = self._until.get(access_key)
        if until is None:
            return 0.0
        if now < until:
            return until - now
        del self._until[access_key]
        self._failures.pop(access_key, None)
        return 0.0

    def failed(self, access_key: str, now: float) -> bool:
        """Count one failure; True if it locked the key."""
        if self.limit <= 0:
            return False
        count = self._failures.get(access_key, 0) + 1
        self._failures[access_key] = count
        if count >= self.limit:
            self._until[access_key] = now + self.seconds
            return True
        return False

    def succeeded(self, access_key: str) -> None:
        self._failures.pop(access_key, None)

    def failures(self, access_key: str) -> int:
        return self._failures.get(access_key, 0)


class GatewayAuthenticator:
    """Tokens (configured or issued by the simulated IAM) and AK/SK signatures.

    ``clock`` gives the time in epoch seconds (token expiry, signature dates, lock-out).
    """

    def __init__(
        self,
        config: SimulatorConfig,
        registry: TokenRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = config.tokens
        self._expired = config.expired_tokens
        self._keys: Mapping[str, str] = config.access_keys
        self._security_tokens: Mapping[str, str] = config.security_tokens
        self._max_skew = timedelta(seconds=config.signature_max_skew_s)
        self._registry = registry
        self._clock = clock
        self.lockout = LockOut(config.lockout_failures, config.lockout_s)

    async def authenticate(self, request: web.Request, *, any_scope: bool = False) -> Identity:
        token = request.headers.get(TOKEN_HEADER)
        if token:
            project_id = request.match_info.get("project_id")
            return self._check_token(token, project_id, any_scope=any_scope)
        authorization = request.headers.get(_AUTHORIZATION, "")
        if authorization.startswith(ALGORITHM):
            return await self._check_signature(request, authorization)
        raise AuthError(401, "APIG.0301", f"{_INCORRECT}: x-auth-token not found")

    def _check_token(self, token: str, project_id: str | None, *, any_scope: bool) -> Identity:
        if token in self._tokens:
            return Identity(token)
        if token in self._expired:
            raise AuthError(401, "APIG.0307", TOKEN_MUST_BE_UPDATED)
        issued = self._registry.get(token)
        if issued is None:
            raise AuthError(401, "APIG.0301", f"{_INCORRECT}: decrypt token fail")
        if self._clock() >= issued.expires_at or (
            not any_scope and issued.project_id != project_id
        ):
            raise AuthError(401, "APIG.0307", TOKEN_MUST_BE_UPDATED)
        return Identity(issued.identity, issued.domain)

    async def _check_signature(self, request: web.Request, authorization: str) -> Identity:
        now = self._clock()
        claimed = _access_key_of(authorization)
        known = claimed if claimed is not None and claimed in self._keys else None
        if known is not None:
            locked_for = self.lockout.locked_for(known, now)
            if locked_for > 0:
                raise AuthError(
                    401,
                    "APIG.0301",
                    f"{_INCORRECT}: access key {_masked(known)} is locked for "
                    f"{locked_for:.0f} more seconds after {self.lockout.limit} failed "
                    "signatures in a row",
                )
        try:
            access_key = verify_signature(
                method=request.method,
                path=request.rel_url.raw_path,
                raw_query=request.rel_url.raw_query_string,
                headers=request.headers,
                body=await request.read(),
                secret_for=self._keys.get,
                now=datetime.fromtimestamp(now, UTC),
                max_skew=self._max_skew,
            )
            self._check_security_token(access_key, request.headers.get(SECURITY_TOKEN_HEADER))
        except SignatureError as exc:
            message = f"{_INCORRECT}: verify aksk signature fail: {exc.reason}"
            if known is not None and self.lockout.failed(known, now):
                message += (
                    f"; access key {_masked(known)} is now locked for "
                    f"{self.lockout.seconds:g} seconds"
                )
            raise AuthError(401, "APIG.0301", message) from None
        self.lockout.succeeded(access_key)
        return Identity(f"ak:{access_key}", signed=True)

    def _check_security_token(self, access_key: str, sent: str | None) -> None:
        expected = self._security_tokens.get(access_key)
        if expected is None:
            if sent is not None:
                raise SignatureError(
                    f"X-Security-Token sent, but access key {_masked(access_key)} is a "
                    "permanent key (temporary keys come with their security token)"
                )
            return
        if sent is None:
            raise SignatureError(
                f"access key {_masked(access_key)} is temporary: X-Security-Token is missing"
            )
        if not hmac.compare_digest(sent.strip().encode(), expected.encode()):
            raise SignatureError(
                f"X-Security-Token does not belong to access key {_masked(access_key)}"
            )


def authenticator_for(
    config: SimulatorConfig, registry: TokenRegistry, clock: Callable[[], float] = time.time
) -> Authenticator:
    if config.auth_enabled:
        return GatewayAuthenticator(config, registry, clock)
    return OpenAuthenticator()
