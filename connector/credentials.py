"""Where credentials come from: the environment or files, never a flag's value.

    HSS_AUTH_TOKEN / --token-file               an IAM token (X-Auth-Token)
    HSS_ACCESS_KEY + HSS_SECRET_KEY             AK/SK request signing
      (+ HSS_SECURITY_TOKEN for temporary keys), or --credentials-file
    HSS_IAM_USER + HSS_IAM_PASSWORD + HSS_IAM_DOMAIN
      (+ HSS_IAM_ENDPOINT)                       project-scoped tokens from IAM

A credentials file is the provider console's ``credentials.csv`` (columns ``User Name,
Access Key Id,Secret Access Key``) or a TOML file with ``access_key``, ``secret_key`` and
optionally ``security_token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .config import Auth, IamPassword, Secret
from .errors import ConfigError
from .signing import AkSkCredentials

__all__ = ["auth_from_environment", "read_credentials_file"]


def _read(path: str, what: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8-sig").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", where=path) from None
    if not text:
        raise ConfigError(f"the {what} is empty", where=path)
    return text


def read_credentials_file(path: str) -> AkSkCredentials:
    import csv  # imported here: most runs read no credentials file
    import io
    import tomllib

    text = _read(path, "credentials file")
    first_line = text.splitlines()[0].lower()
    if "access key id" in first_line:
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows:
            raise ConfigError("the CSV has a header but no key row", where=path)
        row = {k.strip().lower(): (v or "").strip() for k, v in rows[0].items() if k}
        access, secret = row.get("access key id"), row.get("secret access key")
        token = None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise ConfigError(
                "expected the console's credentials.csv or TOML with access_key and "
                "secret_key (the file's content is not shown: it holds secrets)",
                where=path,
            ) from None
        unknown = set(data) - {"access_key", "secret_key", "security_token"}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r}", where=path)
        access, secret = data.get("access_key"), data.get("secret_key")
        token = data.get("security_token")
    if not isinstance(access, str) or not access or not isinstance(secret, str) or not secret:
        raise ConfigError("needs both an access key and a secret key", where=path)
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigError("security_token must be non-empty text", where=path)
    return AkSkCredentials(access, secret, token)


def auth_from_environment(
    environ: Mapping[str, str],
    *,
    token_file: str | None = None,
    credentials_file: str | None = None,
    iam_endpoint: str | None = None,
) -> Auth:
    token = _read(token_file, "token file") if token_file else environ.get("HSS_AUTH_TOKEN")
    access, secret = environ.get("HSS_ACCESS_KEY"), environ.get("HSS_SECRET_KEY")
    user = environ.get("HSS_IAM_USER")
    sources = [
        name
        for name, present in (
            ("a token", bool(token)),
            ("an access key", bool(access or secret or credentials_file)),
            ("an IAM user", bool(user)),
        )
        if present
    ]
    if len(sources) > 1:
        raise ConfigError(f"several credentials are set ({' and '.join(sources)}); keep one")
    if token:
        return Auth(token=Secret(token))
    if credentials_file:
        return Auth(aksk=read_credentials_file(credentials_file))
    if access or secret:
        if not (access and secret):
            raise ConfigError("HSS_ACCESS_KEY and HSS_SECRET_KEY go together; set both")
        return Auth(aksk=AkSkCredentials(access, secret, environ.get("HSS_SECURITY_TOKEN") or None))
    if user:
        password, domain = environ.get("HSS_IAM_PASSWORD"), environ.get("HSS_IAM_DOMAIN")
        if not password or not domain:
            raise ConfigError("HSS_IAM_USER needs HSS_IAM_PASSWORD and HSS_IAM_DOMAIN too")
        return Auth(
            iam=IamPassword(
                user=user,
                password=Secret(password),
                domain=domain,
                iam_endpoint=iam_endpoint or environ.get("HSS_IAM_ENDPOINT") or None,
            )
        )
    raise ConfigError(
        "no credentials: set HSS_AUTH_TOKEN (or pass --token-file PATH), or HSS_ACCESS_KEY and "
        "HSS_SECRET_KEY (or --credentials-file PATH), or HSS_IAM_USER, HSS_IAM_PASSWORD and "
        "HSS_IAM_DOMAIN"
    )
