"""The simulated IAM: ``POST /v3/auth/tokens`` with a password identity (project or
domain scope) and ``GET /v3/auth/projects`` (KeystoneListAuthProjects).

Pure logic, no aiohttp: :meth:`IamService.login` takes the request body and the time and
returns the new token and the response body, or raises :class:`IamError` (status and an
IAM/Keystone-style body ``{"error": {"code": 401, "message": ..., "title": ...}}``).
Issued tokens live in a :class:`TokenRegistry`, which the gateway's authenticator reads:
a project-scoped token is valid for its project until ``expires_at``; a domain-scoped one
(IAM calls it a token for global services) is valid for IAM only, never for HSS.
:func:`project_list_body` is the answer of ``GET /v3/auth/projects``: every configured
project of the account, disabled ones included (``enabled: false``), unpaged;
:func:`domain_list_body` that of ``GET /v3/auth/domains``: the caller's account, whose id
an AK/SK-signed project listing must carry in ``X-Domain-Id`` (the provider's signing guide
asks it of AK/SK calls to global services; the SDK learns it from this call, signed
without it, as the simulator accepts it).

The login body, as the provider's IAM documents it (``scope`` is either one)::

    {"auth": {"identity": {"methods": ["password"],
                           "password": {"user": {"name": "...", "password": "...",
                                                 "domain": {"name": "..."}}}},
              "scope": {"project": {"id": "..."}}}      # or {"domain": {"name": "..."}}

Only this shape is served: user by name, domain by name, project scope by id, domain scope
by name or id. A wrong password and an unknown user get the same answer, so the answer
does not tell which.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from connector.simulator.config import IamProject

__all__ = [
    "DOMAIN_ID_HEADER",
    "IamError",
    "IamService",
    "IssuedToken",
    "PasswordLogin",
    "TokenRegistry",
    "domain_id_of",
    "domain_list_body",
    "project_list_body",
]

SUBJECT_TOKEN_HEADER = "X-Subject-Token"
DOMAIN_ID_HEADER = "X-Domain-Id"
"""The account id an AK/SK-signed call to a global service (IAM) carries."""
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
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
    """What a password-identity request asks for; the password is masked in ``repr``.

    ``project_id`` is the project scope; ``None`` for a domain-scoped token.
    """

    domain: str
    user: str
    password: str = field(repr=False)
    project_id: str | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token the simulated IAM issued: whose, for which project (``None``: domain-scoped,
    for IAM only), until when (epoch s)."""

    domain: str
    user: str
    project_id: str | None
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
    scope = _object(auth.get("scope"), "auth.scope (a project or domain scope is required)")
    domain_name = _text(domain.get("name"), "auth.identity.password.user.domain.name")
    if ("project" in scope) == ("domain" in scope):
        raise IamError(
            400, "Invalid request body: auth.scope needs auth.scope.project or auth.scope.domain."
        )
    project_id: str | None = None
    if "project" in scope:
        project = _object(scope.get("project"), "auth.scope.project")
        project_id = _text(project.get("id"), "auth.scope.project.id")
    else:
        scoped = _object(scope.get("domain"), "auth.scope.domain")
        if scoped.get("name") is None:
            wanted = _text(scoped.get("id"), "auth.scope.domain.name or id")
            matches = wanted == domain_id_of(domain_name)
        else:
            matches = _text(scoped.get("name"), "auth.scope.domain.name") == domain_name
        if not matches:  # a user may scope to the account it belongs to only
            raise IamError(401, "The request you have made requires authentication.")
    return PasswordLogin(
        domain=domain_name,
        user=_text(user.get("name"), "auth.identity.password.user.name"),
        password=_text(user.get("password"), "auth.identity.password.user.password"),
        project_id=project_id,
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
    domain = {"id": domain_id_of(issued.domain), "name": issued.domain}
    scope: dict[str, Any] = (
        {"domain": domain}
        if issued.project_id is None
        else {"project": {"id": issued.project_id, "name": issued.project_id, "domain": domain}}
    )
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
            **scope,
            "roles": [{"id": _stable_id("role", "te_admin"), "name": "te_admin"}],
            "catalog": [],
        }
    }


def domain_id_of(domain: str) -> str:
    """The account (domain) id of an account name."""
    return _stable_id("domain", domain)


ACCOUNT = "hss-simulator"
"""The account of configured tokens and access keys (an IAM user's is its domain)."""


def project_list_body(
    projects: Sequence[IamProject], base_url: str, account: str = ACCOUNT
) -> dict[str, Any]:
    """The body of ``GET /v3/auth/projects`` (KeystoneListAuthProjects): every project,
    enabled or not, with the reference's fields; ``parent_id`` is the account for a region's
    project and the region's project for a sub-project (``<region>_<name>``). The simulator
    has one set of projects: every caller's account holds them."""
    account = domain_id_of(account)
    by_name = {p.name: p.id for p in projects}
    listed = []
    for project in projects:
        region = project.name.split("_", 1)[0]
        parent = by_name.get(region, account) if region != project.name else account
        listed.append(
            {
                "id": project.id,
                "name": project.name,
                "domain_id": account,
                "parent_id": parent,
                "enabled": project.enabled,
                "is_domain": False,
                "description": project.description,
                "links": {"self": f"{base_url}/v3/projects/{project.id}"},
            }
        )
    return {"projects": listed, "links": {"self": f"{base_url}/v3/auth/projects"}}


def _stable_id(*parts: str) -> str:
    """A 32-hex-digit id derived from names, like the provider's ids."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def domain_list_body(base_url: str, account: str = ACCOUNT) -> dict[str, Any]:
    """The body of ``GET /v3/auth/domains`` (KeystoneListAuthDomains): the caller's account."""
    domain_id = domain_id_of(account)
    return {
        "domains": [
            {
                "id": domain_id,
                "name": account,
                "enabled": True,
                "description": "",
                "links": {"self": f"{base_url}/v3/domains/{domain_id}"},
            }
        ],
        "links": {"self": f"{base_url}/v3/auth/domains"},
    }
