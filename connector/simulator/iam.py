"""The simulated IAM: ``POST /v3/auth/tokens`` with a password identity, project scope.

Pure logic, no aiohttp: :meth:`IamService.login` takes the request body and the time and
returns the new token and the response body, or raises :class:`IamError` (status and an
IAM/Keystone-style body ``{"error": {"code": 401, "message": ..., "title": ...}}``).
Issued tokens live in a :class:`TokenRegistry`, which the gateway's authenticator reads:
a token is valid for its project until ``expires_at``.

The request body, as the provider's IAM documents it::

    {"auth": {"identity": {"methods": ["password"],
                           "password": {"user": {"name": "...", "password": "...",
                                                 "domain": {"name": "..."}}}},
              "scope": {"project": {"id": "..."}}}}

Only this shape is served: user by name, domain by name, project scope by id. A wrong
password and an unknown user get the same answer, so the answer does not tell which.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["IamError", "IamService", "IssuedToken", "PasswordLogin", "TokenRegistry"]

SUBJECT_TOKEN_HEADER = "X-Subject-Token"
_TITLES = {400: "Bad Request", 401: "Unauthorized"}
_WRONG_CREDENTIALS = "The username or password is wrong."


class IamError(Exception):
    """A refused login: HTTP status and message (never the password)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        title = _TITLES.get(self.status, "Error")
        return {"error": {"code": self.status, "message": self.message, "title": title}}


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    """What a password-identity request asks for; the password is masked in ``repr``."""

    domain: str
    user: str
    password: str = field(repr=False)
    project_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token the simulated IAM issued: whose, for which project, until when (epoch s)."""

    domain: str
    user: str
    project_id: str
    issued_at: float
    expires_at: float

    @property
    def identity(self) -> str:
        """The rate-limit key: the gateway throttles per user, not per token."""
        return f"iam:{self.domain}/{self.user}"


class TokenRegistry:
    """Every token issued so far (expired ones too: they are answered ``APIG.0307``)."""

    def __init__(self) -> None:
        self._tokens: dict[str, IssuedToken] = {}

    def add(self, issued: IssuedToken) -> str:
        token = "MII" + secrets.token_urlsafe(96)
        self._tokens[token] = issued
        return token

    def get(self, token: str) -> IssuedToken | None:
        return self._tokens.get(token)

    def __len__(self) -> int:
        return len(self._tokens)


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise IamError(400, f"Invalid request body: {where} must be an object.")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise IamError(400, f"Invalid request body: {where} must be a non-empty string.")
    return value


def parse_login(body: bytes) -> PasswordLogin:
    """The password login a request body asks for; :class:`IamError` (400/401) if none."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise IamError(400, "The request body is not valid JSON.") from None
    auth = _object(_object(data, "the body").get("auth"), "auth")
    identity = _object(auth.get("identity"), "auth.identity")
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods:
        raise IamError(400, "Invalid request body: auth.identity.methods must be a list.")
    if methods != ["password"]:
        raise IamError(
            401, f"Unsupported authentication methods {methods!r}: this IAM serves ['password']."
        )
    user = _object(
        _object(identity.get("password"), "auth.identity.password").get("user"),
        "auth.identity.password.user",
    )
    domain = _object(user.get("domain"), "auth.identity.password.user.domain")
    scope = _object(auth.get("scope"), "auth.scope (a project scope is required)")
    project = _object(scope.get("project"), "auth.scope.project")
    return PasswordLogin(
        domain=_text(domain.get("name"), "auth.identity.password.user.domain.name"),
        user=_text(user.get("name"), "auth.identity.password.user.name"),
        password=_text(user.get("password"), "auth.identity.password.user.password"),
        project_id=_text(project.get("id"), "auth.scope.project.id"),
    )


def _iso(moment: float) -> str:
    """IAM's timestamp format: ``2026-11-28T04:33:29.123000Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IamService:
    """Checks password logins against ``users`` and issues tokens valid for ``ttl_s``."""

    def __init__(
        self, users: Mapping[tuple[str, str], str], ttl_s: float, registry: TokenRegistry
    ) -> None:
        self._users = users
        self._ttl_s = ttl_s
        self.registry = registry

    def login(self, body: bytes, now: float) -> tuple[str, IssuedToken, dict[str, Any]]:
        """A new token, what it is, and the response body; :class:`IamError` if refused."""
        login = parse_login(body)
        expected = self._users.get((login.domain, login.user))
        # compare even for an unknown user, so timing does not tell users apart
        matches = hmac.compare_digest(login.password.encode(), (expected or "").encode())
        if expected is None or not matches:
            raise IamError(401, _WRONG_CREDENTIALS)
        issued = IssuedToken(
            domain=login.domain,
            user=login.user,
            project_id=login.project_id,
            issued_at=now,
            expires_at=now + self._ttl_s,
        )
        token = self.registry.add(issued)
        return token, issued, _token_body(issued)


def _token_body(issued: IssuedToken) -> dict[str, Any]:
    domain = {"id": _stable_id("domain", issued.domain), "name": issued.domain}
    return {
        "token": {
            "methods": ["password"],
            "issued_at": _iso(issued.issued_at),
            "expires_at": _iso(issued.expires_at),
            "user": {
                "id": _stable_id("user", issued.domain, issued.user),
                "name": issued.user,
                "domain": domain,
                "password_expires_at": "",
            },
            "project": {"id": issued.project_id, "name": issued.project_id, "domain": domain},
            "roles": [{"id": _stable_id("role", "te_admin"), "name": "te_admin"}],
            "catalog": [],
        }
    }


def _stable_id(*parts: str) -> str:
    """A 32-hex-digit id derived from names, like the provider's ids."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
