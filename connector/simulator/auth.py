"""Authentication of simulated API requests.

One seam, :class:`Authenticator`: ``authenticate(request)`` returns the caller's
:class:`Identity` (the rate-limit key) or raises :class:`AuthError`, which the app turns
into the gateway's 401 body. :class:`TokenAuthenticator` checks ``X-Auth-Token``;
AK/SK signature verification (``SDK-HMAC-SHA256``) is not implemented yet: a request
signed that way without a token is refused with ``APIG.0301``. It belongs here, as
another :class:`Authenticator` (or a branch of :func:`authenticator_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from connector.simulator.config import SimulatorConfig

__all__ = [
    "AuthError",
    "Authenticator",
    "Identity",
    "OpenAuthenticator",
    "TokenAuthenticator",
    "authenticator_for",
]

TOKEN_HEADER = "X-Auth-Token"
_AUTHORIZATION = "Authorization"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling; ``key`` is the credential (masked in ``repr``)."""

    key: str = field(repr=False)


class AuthError(Exception):
    """A refused credential: HTTP status, gateway error code and message."""

    def __init__(self, status: int, error_code: str, error_msg: str) -> None:
        super().__init__(status, error_code, error_msg)
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg


class Authenticator(Protocol):
    def authenticate(self, request: web.Request) -> Identity: ...


class OpenAuthenticator:
    """Auth off: everyone is accepted; the identity is whatever credential was sent."""

    def authenticate(self, request: web.Request) -> Identity:
        token = request.headers.get(TOKEN_HEADER)
        if token:
            return Identity(token)
        authorization = request.headers.get(_AUTHORIZATION, "")
        access = authorization.partition("Access=")[2].partition(",")[0].strip()
        return Identity(f"ak:{access}" if access else "anonymous")


class TokenAuthenticator:
    """``X-Auth-Token`` must be one of ``tokens``; ``expired`` tokens get ``APIG.0307``."""

    def __init__(self, tokens: frozenset[str], expired: frozenset[str]) -> None:
        self._tokens = tokens
        self._expired = expired

    def authenticate(self, request: web.Request) -> Identity:
        token = request.headers.get(TOKEN_HEADER)
        if not token:
            if request.headers.get(_AUTHORIZATION, "").startswith("SDK-HMAC-SHA256"):
                raise AuthError(
                    401,
                    "APIG.0301",
                    "Incorrect IAM authentication information: verify aksk signature fail "
                    "(this simulator does not verify AK/SK signatures yet; send X-Auth-Token)",
                )
            raise AuthError(
                401,
                "APIG.0301",
                "Incorrect IAM authentication information: x-auth-token not found",
            )
        if token in self._expired:
            raise AuthError(401, "APIG.0307", "The token must be updated.")
        if token not in self._tokens:
            raise AuthError(
                401, "APIG.0301", "Incorrect IAM authentication information: decrypt token fail"
            )
        return Identity(token)


def authenticator_for(config: SimulatorConfig) -> Authenticator:
    if config.auth_enabled:
        return TokenAuthenticator(config.tokens, config.expired_tokens)
    return OpenAuthenticator()
