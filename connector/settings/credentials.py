"""Where credentials come from: the environment or files, never a flag's value.

    HSS_AUTH_TOKEN / token_file                 an IAM token (X-Auth-Token)
    HSS_ACCESS_KEY + HSS_SECRET_KEY             AK/SK request signing
      (+ HSS_SECURITY_TOKEN for temporary keys), or credentials_file
    HSS_IAM_USER + HSS_IAM_PASSWORD + HSS_IAM_DOMAIN
      (+ HSS_IAM_ENDPOINT)                       project-scoped tokens from IAM

A credentials file is the provider console's ``credentials.csv`` (columns ``User Name,
Access Key Id,Secret Access Key``) or a TOML file with ``access_key``, ``secret_key`` and
optionally ``security_token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from connector.errors import ConfigError
from connector.settings.config import Auth, IamPassword, Secret, check_credential
from connector.settings.names import setting
from connector.source.signing import AkSkCredentials

__all__ = ["auth_from_environment", "read_credentials_file"]


def _read(path: str, what: str, where: str) -> str:
    """A secrets file's text; ``where`` (the option and the path) names it in every error,
    which never quotes its content."""
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", where=where) from None
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the {what} is not UTF-8 text (byte {exc.start} is not UTF-8; its content is "
            "not shown); save it as UTF-8",
            where=where,
        ) from None
    if not text:
        raise ConfigError(f"the {what} is empty", where=where)
    return text


def read_credentials_file(
    path: str, *, option: str = setting("credentials_file")
) -> AkSkCredentials:
    import csv  # imported here: most runs read no credentials file
    import io
    import tomllib

    where = f"{option} {path}"
    text = _read(path, "credentials file", where)
    first_line = text.splitlines()[0].lower()
    if "access key id" in first_line:
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows:
            raise ConfigError("the CSV has a header but no key row", where=where)
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
                where=where,
            ) from None
        unknown = set(data) - {"access_key", "secret_key", "security_token"}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r}", where=where)
        access, secret = data.get("access_key"), data.get("secret_key")
        token = data.get("security_token")
    if not isinstance(access, str) or not access or not isinstance(secret, str) or not secret:
        raise ConfigError("needs both an access key and a secret key", where=where)
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigError("security_token must be non-empty text", where=where)
    for key, value in (("access key", access), ("secret key", secret), ("security_token", token)):
        if value is not None:
            check_credential(value, where=f"{where} ({key})")
    return AkSkCredentials(access, secret, token)


def _variable(environ: Mapping[str, str], name: str) -> str | None:
    """An environment variable's credential, checked; the error names the variable."""
    value = environ.get(name)
    return check_credential(value, where=f"environment {name}") if value else value


def auth_from_environment(
    environ: Mapping[str, str],
    *,
    token_file: str | None = None,
    credentials_file: str | None = None,
    iam_endpoint: str | None = None,
    names: Mapping[str, str] | None = None,
) -> Auth:
    """The one credential the environment and the files hold. ``names`` says where the
    files were named (``token_file``: ``file hss.toml key token_file``), for the errors."""
    names = names or {}
    if token_file:
        option = names.get("token_file", setting("token_file"))
        where = f"{option} {token_file}"
        token: str | None = check_credential(_read(token_file, "token file", where), where=where)
    else:
        token = _variable(environ, "HSS_AUTH_TOKEN")
    access, secret = _variable(environ, "HSS_ACCESS_KEY"), _variable(environ, "HSS_SECRET_KEY")
    user = _variable(environ, "HSS_IAM_USER")
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
        option = names.get("credentials_file", setting("credentials_file"))
        return Auth(aksk=read_credentials_file(credentials_file, option=option))
    if access or secret:
        if not (access and secret):
            raise ConfigError("HSS_ACCESS_KEY and HSS_SECRET_KEY go together; set both")
        security_token = _variable(environ, "HSS_SECURITY_TOKEN") or None
        return Auth(aksk=AkSkCredentials(access, secret, security_token))
    if user:
        password = _variable(environ, "HSS_IAM_PASSWORD")
        domain = _variable(environ, "HSS_IAM_DOMAIN")
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
        f"no credentials: set HSS_AUTH_TOKEN (or pass {setting('token_file')} PATH), or "
        f"HSS_ACCESS_KEY and HSS_SECRET_KEY (or {setting('credentials_file')} PATH), or "
        "HSS_IAM_USER, HSS_IAM_PASSWORD and "
        "HSS_IAM_DOMAIN"
    )
