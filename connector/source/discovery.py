"""Project discovery (``Config.all_projects``): the projects a credential can read in the
endpoint's region, as IAM lists them.

    discover_projects(config, transport) -> Discovery      (or DiscoveryError, AuthError, ...)

The listing is ``GET {iam}/v3/auth/projects`` (IAM's KeystoneListAuthProjects), answered with
``{"projects": [{"id", "name", "enabled", "domain_id", "parent_id", "is_domain",
"description", "links"}], "links": {"self": ...}}``: every project of the account the
caller may use, in every region, disabled ones included, in one unpaged list. How each
credential asks (README "Project discovery" has the sources):

- a token: sent as ``X-Auth-Token``; IAM takes any user token, of any scope;
- an access key pair: the request is signed (SDK-HMAC-SHA256, ``connector.source.signing``) with
  no ``X-Project-Id`` (no project is known yet) and with the account id in ``X-Domain-Id``,
  as AK/SK calls to a global service carry it; the account id comes first from
  ``GET {iam}/v3/auth/domains``, signed without it, as the provider's SDK learns it;
- an IAM password identity: a token scoped to the user's account (domain) is obtained
  first, the scope IAM documents for global services such as itself.

A project belongs to the endpoint's region when its name is the region (``cn-north-4``) or
a sub-project of it (``cn-north-4_dev``). Disabled projects of the region are skipped and
logged; so, in one line, are the projects of other regions. No project left is an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from yarl import URL

from connector.errors import (
    ApiError,
    AuthError,
    ConfigError,
    DiscoveryError,
    MalformedResponseError,
    ServerError,
    ThrottledError,
)
from connector.redaction import Redactor
from connector.settings.config import (
    Config,
    Secret,
    check_project_id,
    iam_endpoint_for,
    region_of,
)
from connector.settings.names import setting
from connector.source.auth import IamAuth, iam_error_fields
from connector.source.client import USER_AGENT
from connector.source.retry import retrying
from connector.source.signing import sign_request
from connector.source.transport import Deadline, Transport, Where

__all__ = ["DOMAINS_PATH", "PROJECTS_PATH", "Discovery", "ListedProject", "discover_projects"]

log = logging.getLogger("connector")

PROJECTS_PATH = "/v3/auth/projects"
DOMAINS_PATH = "/v3/auth/domains"


@dataclass(frozen=True, slots=True)
class ListedProject:
    """One project as IAM lists it."""

    id: str
    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class Discovery:
    """What discovery found: the projects to read, and what was left out and why."""

    region: str
    iam_endpoint: str
    read: tuple[ListedProject, ...]
    """Enabled projects of the region, in IAM's order: the ones the run reads."""
    disabled: tuple[ListedProject, ...]
    """Projects of the region that IAM lists as disabled: skipped."""
    other_regions: tuple[ListedProject, ...]
    """Projects of other regions: another endpoint serves them."""
    request_id: str | None = None

    @property
    def project_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.read)

    def to_dict(self) -> dict[str, Any]:
        """For the run report."""
        return {
            "region": self.region,
            "iam_endpoint": self.iam_endpoint,
            "projects": [{"id": p.id, "name": p.name} for p in self.read],
            "skipped": [{"id": p.id, "name": p.name, "reason": "disabled"} for p in self.disabled]
            + [
                {"id": p.id, "name": p.name, "reason": "another region"} for p in self.other_regions
            ],
            "request_id": self.request_id,
        }


def _in_region(name: str, region: str) -> bool:
    return name == region or name.startswith(region + "_")


async def discover_projects(
    config: Config,
    transport: Transport,
    *,
    redactor: Redactor | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Discovery:
    """List the projects ``config``'s credential can read in its endpoint's region.

    Transient failures (connection, 429, 5xx) are retried under ``config.fetch.retry``;
    401/403 raise ``AuthError`` (status, error_code, request id; never the secret); no
    enabled project in the region raises ``DiscoveryError``.
    """
    endpoint = config.endpoint
    if endpoint is None:  # Config refuses all_projects without one
        raise ConfigError("project discovery needs an endpoint", setting="all_projects")
    region = config.region or region_of(endpoint)
    identity_iam = config.auth.iam.iam_endpoint if config.auth.iam is not None else None
    iam = config.iam_endpoint or identity_iam or iam_endpoint_for(endpoint)
    if region is None or iam is None:  # Config refuses these too; named again for safety
        raise ConfigError(
            f"cannot tell the region or the IAM endpoint of {endpoint}",
            setting="all_projects",
        )
    url = URL(f"{iam.rstrip('/')}{PROJECTS_PATH}", encoded=True)

    # obtained once, kept across retries: an IAM identity's account-scoped token, and for
    # an access key the account id its signed listing carries in X-Domain-Id
    account_token: Secret | None = None
    account_id: str | None = None

    async def once() -> tuple[list[ListedProject], str | None]:
        nonlocal account_token, account_id
        if config.auth.iam is not None and account_token is None:
            # the token comes from the IAM that lists the projects
            identity = replace(config.auth.iam, iam_endpoint=iam)
            account_token = await IamAuth(identity, transport, endpoint).domain_token()
        if config.auth.aksk is not None and account_id is None:
            account_id = await _account_id(transport, iam, config, redactor)
        headers = _credentials(config, url, account_token, account_id)
        if redactor is not None:
            redactor.add(headers.get("X-Auth-Token"), headers.get("X-Security-Token"))
        status, body, request_id = await _get(transport, url, headers, config)
        if status != 200:
            raise _iam_error(status, body, request_id, "list the projects")
        return _parse(body, request_id), request_id

    listed, request_id = await retrying(once, config.fetch.retry, sleep=sleep)
    seen: set[str] = set()
    read: list[ListedProject] = []
    disabled: list[ListedProject] = []
    others: list[ListedProject] = []
    for project in listed:
        if project.id in seen:
            continue
        seen.add(project.id)
        if not _in_region(project.name, region):
            others.append(project)
        elif project.enabled:
            read.append(project)
        else:
            disabled.append(project)
    found = Discovery(region, iam, tuple(read), tuple(disabled), tuple(others), request_id)
    _log(found)
    if not read:
        raise DiscoveryError(
            f"IAM at {iam} lists no enabled project of region {region} for this credential "
            f"({len(listed)} listed: {len(disabled)} disabled in {region}, {len(others)} of "
            f"other regions); nothing was read. Check the region ({setting('endpoint')} / "
            f"{setting('region')}) and "
            "that the credential belongs to an account with a project there",
            request_id=request_id,
        )
    return found


def _log(found: Discovery) -> None:
    log.info(
        "discovered %d project(s) of region %s through IAM at %s: %s",
        len(found.read),
        found.region,
        found.iam_endpoint,
        ", ".join(f"{p.id} ({p.name})" for p in found.read) or "none",
    )
    for project in found.disabled:
        log.info("project %s (%s) skipped: IAM lists it as disabled", project.id, project.name)
    if found.other_regions:
        names = sorted({p.name for p in found.other_regions})
        log.info(
            "%d project(s) of other regions not read (another endpoint serves them): %s",
            len(found.other_regions),
            ", ".join(names),
        )


def _credentials(
    config: Config, url: URL, account_token: Secret | None, account_id: str | None
) -> dict[str, str]:
    """The headers that authenticate ``GET url`` with the run's credential: a token (an
    IAM identity's ``account_token``), or an AK/SK signature with no project and, when
    known, the account in ``X-Domain-Id``."""
    headers = {"Content-Type": "application/json;charset=utf8"}
    auth = config.auth
    token = auth.token or account_token
    if token is not None:
        return {**headers, "X-Auth-Token": token.reveal()}
    assert auth.aksk is not None
    if account_id is not None:
        headers["X-Domain-Id"] = account_id
    signed = sign_request(
        method="GET",
        scheme=url.scheme,
        host=url.raw_authority,
        path=url.raw_path,
        query=[],
        headers=headers,
        body=None,
        credentials=auth.aksk,
        project_id=None,
        now=datetime.now(UTC),
    )
    return signed.headers


async def _account_id(
    transport: Transport, iam: str, config: Config, redactor: Redactor | None
) -> str:
    """The access key's account id, from ``GET /v3/auth/domains`` (KeystoneListAuthDomains)
    signed without one, as the SDK's GlobalCredentials learn it."""
    url = URL(f"{iam.rstrip('/')}{DOMAINS_PATH}", encoded=True)
    headers = _credentials(config, url, None, None)
    if redactor is not None:
        redactor.add(headers.get("X-Security-Token"))
    status, body, request_id = await _get(transport, url, headers, config)
    if status != 200:
        raise _iam_error(status, body, request_id, "tell the access key's account")
    try:
        data = orjson.loads(body)
        account = data["domains"][0]["id"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        account = None
    if not isinstance(account, str) or not account:
        error = MalformedResponseError(
            "IAM's account list (GET /v3/auth/domains) names no account id for the access "
            "key; it is needed in X-Domain-Id to list the projects with an AK/SK signature",
            request_id=request_id,
        )
        error.retryable = False  # a readable answer without an account: asking again won't help
        raise error
    return account


async def _get(
    transport: Transport, url: URL, headers: dict[str, str], config: Config
) -> tuple[int, bytes, str | None]:
    """The one HTTP call: status, body and request id, or a ``TransportError``."""
    response = await transport.send(
        "GET",
        url,
        headers={**headers, "Accept": "application/json", "User-Agent": USER_AGENT},
        deadline=Deadline(
            config.fetch.request_timeout_s,
            f"IAM did not answer within {setting('request_timeout')}",
        ),
        where=Where(service="IAM"),
    )
    request_id = response.headers.get("X-Request-Id") or response.headers.get("X-IAM-Trace-Id")
    return response.status, response.body, request_id


def _iam_error(status: int, body: bytes, request_id: str | None, what: str) -> ApiError:
    code, msg = iam_error_fields(body.decode("utf-8", "replace"))
    context: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "error_msg": msg,
        "request_id": request_id,
    }
    if status in (401, 403):
        return AuthError(
            f"IAM refused to {what} ({setting('all_projects')}); check the credential", **context
        )
    if status == 429:
        return ThrottledError(f"IAM throttled the request to {what}", **context)
    if status >= 500:
        return ServerError(f"IAM failed to {what}", **context)
    return ApiError(f"IAM answered the request to {what} with HTTP {status}", **context)


def _parse(body: bytes, request_id: str | None) -> list[ListedProject]:
    """The projects of a ``GET /v3/auth/projects`` body; anything else is refused loudly."""

    def bad(what: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"IAM's project list is not the documented JSON: {what}", request_id=request_id
        )

    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("projects"), list):
        raise bad("no 'projects' list")
    links = data.get("links")
    if isinstance(links, dict) and links.get("next"):
        # documented unpaged; a page of a longer list would silently leave projects out
        raise DiscoveryError(
            "IAM answered one page of a longer project list (links.next is set); the list "
            "is documented as unpaged, so the connector refuses to read only part of it",
            request_id=request_id,
        )
    projects: list[ListedProject] = []
    for index, item in enumerate(data["projects"]):
        if not isinstance(item, dict):
            raise bad(f"projects[{index}] is not an object")
        project_id, name, enabled = item.get("id"), item.get("name"), item.get("enabled")
        if not isinstance(project_id, str) or not isinstance(name, str) or not name:
            raise bad(f"projects[{index}] has no text 'id' and 'name'")
        if not isinstance(enabled, bool):
            raise bad(f"projects[{index}] ({project_id}) has no boolean 'enabled'")
        try:
            check_project_id(project_id)
        except ConfigError:
            raise bad(f"projects[{index}] has an id that is not a project id") from None
        projects.append(ListedProject(project_id, name, enabled))
    return projects
