"""AK/SK request signing (``SDK-HMAC-SHA256``), as the provider's SDKs do it.

Pure functions only: a request, credentials and a time in, headers out (and, for the
embedded simulator, the reverse check: a received request in, the access key out).

The algorithm, step by step (``huaweicloudsdkcore`` 3.1.219, ``signer.Signer``):

1. Headers to sign are the caller's, plus ``X-Project-Id`` (when a project id is given),
   ``X-Security-Token`` (temporary credentials), ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD``
   (when a ``Content-Type`` other than JSON/BSON is set), ``X-Sdk-Date`` (unless given) and
   ``Host`` (unless given; the ``host`` argument verbatim, port included if it has one).
2. Signed headers: every header name without ``_``, lower-cased, sorted, joined by ``;``.
3. Canonical headers: ``name:value.strip()`` and a newline, for each signed header.
4. Canonical URI: the unquoted path split on ``/``, each segment re-encoded (only ``~``
   left bare), a trailing ``/`` added (for signing only: the URL keeps the path as given).
5. Canonical query: :func:`canonical_query_string`; the URL sent uses the same string.
6. Payload hash: hex SHA-256 of the body (an empty or absent body hashes the empty string).
7. Canonical request: method, URI, query, headers, signed header list, payload hash, joined
   by newlines. String to sign: ``SDK-HMAC-SHA256``, the ``X-Sdk-Date`` value and the hex
   SHA-256 of the canonical request, joined by newlines.
8. Signature: hex HMAC-SHA256 of the string to sign, keyed with the secret key itself.
9. ``Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<list>, Signature=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "AkSkCredentials",
    "QueryValue",
    "SignatureError",
    "SignedRequest",
    "canonical_query_string",
    "query_value",
    "sdk_date",
    "sign_request",
    "verify_signature",
]

QueryValue = str | int | bool

ALGORITHM = "SDK-HMAC-SHA256"

_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_AUTHORIZATION_RE = re.compile(
    r"(?P<algorithm>\S+) Access=(?P<access>[^\s,]+), ?"
    r"SignedHeaders=(?P<signed>[^\s,]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)
_REQUIRED_SIGNED = ("host", "x-sdk-date")
_MASK = "***"

_H_AUTHORIZATION = "Authorization"
_H_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
_H_CONTENT_TYPE = "Content-Type"
_H_DATE = "X-Sdk-Date"
_H_HOST = "Host"
_H_PROJECT = "X-Project-Id"
_H_TOKEN = "X-Security-Token"


class SignatureError(Exception):
    """A received request's AK/SK signature was rejected; ``reason`` says why.

    The message never holds a secret key, a security token or the expected signature.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mask_access_key(access_key: str) -> str:
    return f"{access_key[:4]}{_MASK}"


@dataclass(frozen=True, slots=True)
class AkSkCredentials:
    """A permanent (or, with ``security_token``, temporary) access key / secret key pair.

    ``repr`` (and so ``str``) shows only the first four characters of the access key.
    """

    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.access_key:
            raise ValueError("AkSkCredentials: access_key is empty; set the AK of the key pair")
        if not self.secret_key:
            raise ValueError("AkSkCredentials: secret_key is empty; set the SK of the key pair")
        if self.security_token is not None and not self.security_token:
            raise ValueError(
                "AkSkCredentials: security_token is empty; pass None for permanent credentials"
            )

    def __repr__(self) -> str:
        token = "None" if self.security_token is None else repr(_MASK)
        return (
            f"AkSkCredentials(access_key={_mask_access_key(self.access_key)!r}, "
            f"secret_key={_MASK!r}, security_token={token})"
        )


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What to send (``url``, ``headers``) and how it was signed (the intermediates).

    ``repr`` masks the security token (also inside the canonical request) and the signature.
    """

    url: str
    headers: dict[str, str]
    canonical_request: str
    string_to_sign: str
    signature: str

    def __repr__(self) -> str:
        headers = {name: _masked_header(name, value) for name, value in self.headers.items()}
        return (
            f"SignedRequest(url={self.url!r}, headers={headers!r}, "
            f"canonical_request={_masked_canonical(self.canonical_request)!r}, "
            f"string_to_sign={self.string_to_sign!r}, signature={_MASK!r})"
        )


def _masked_header(name: str, value: str) -> str:
    lower = name.lower()
    if lower == _H_TOKEN.lower():
        return _MASK
    if lower == _H_AUTHORIZATION.lower():
        return re.sub(r"Signature=[0-9a-fA-F]+", f"Signature={_MASK}", value)
    return value


def _masked_canonical(canonical_request: str) -> str:
    prefix = f"{_H_TOKEN.lower()}:"
    return "\n".join(
        prefix + _MASK if line.startswith(prefix) else line
        for line in canonical_request.split("\n")
    )


def query_value(value: QueryValue) -> str:
    """The wire form of one query value: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical_query_string(params: Sequence[tuple[str, QueryValue]]) -> str:
    """Sort the raw (key, value) pairs, then percent-encode each RFC 3986 style.

    The URL actually sent uses this same string, so what is signed is what is sent.
    """
    pairs = sorted((key, query_value(value)) for key, value in params)
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def sdk_date(now: datetime) -> str:
    """``now`` as an ``X-Sdk-Date`` value, ``YYYYMMDDTHHMMSSZ`` in UTC.

    ``now`` must be timezone-aware: a naive datetime is ambiguous and rejected.
    """
    return _utc(now, "now").strftime(_DATE_FORMAT)


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} is a naive datetime; pass an aware one, e.g. datetime.now(UTC)")
    return moment.astimezone(UTC)


def _parse_sdk_date(value: str) -> datetime:
    """Parse a strict ``YYYYMMDDTHHMMSSZ`` value; ``ValueError`` if it is not one."""
    if not _DATE_RE.fullmatch(value):
        raise ValueError(f"X-Sdk-Date {value!r} is not of the form YYYYMMDDTHHMMSSZ")
    return datetime.strptime(value, _DATE_FORMAT).replace(tzinfo=UTC)


def _find_header(headers: Mapping[str, str], name: str) -> str | None:
    """The key under which ``name`` is stored, compared case-insensitively."""
    lower = name.lower()
    return next((key for key in headers if key.lower() == lower), None)


def _set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing (in place, keeping its spelling) one of any case."""
    headers[_find_header(headers, name) or name] = value


def _canonical_uri(path: str) -> str:
    segments = unquote(path).split("/")
    uri = "/".join(quote(segment, safe="~") for segment in segments)
    return uri if uri.endswith("/") else uri + "/"


def _payload_hash(body: bytes | None, content_sha256: str | None) -> str:
    if not body:
        return _EMPTY_SHA256
    if content_sha256:
        return content_sha256
    return hashlib.sha256(body).hexdigest()


def _canonical_request(
    *,
    method: str,
    canonical_uri: str,
    canonical_query: str,
    signed_values: Sequence[tuple[str, str]],
    payload_hash: str,
) -> str:
    canonical_headers = "".join(f"{name}:{value.strip()}\n" for name, value in signed_values)
    signed = ";".join(name for name, _ in signed_values)
    return "\n".join(
        (method.upper(), canonical_uri, canonical_query, canonical_headers, signed, payload_hash)
    )


def _string_to_sign(date: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{date}\n{digest}"


def _signature(secret_key: str, string_to_sign: str) -> str:
    key = secret_key.encode("utf-8")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _check_headers(headers: Mapping[str, str]) -> None:
    seen: set[str] = set()
    for name, value in headers.items():
        if not _HEADER_NAME_RE.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if any(char in value for char in "\r\n\0"):
            raise ValueError(f"header {name!r} has a CR, LF or NUL in its value")
        lower = name.lower()
        if lower in seen:
            raise ValueError(f"header {name!r} is given twice (header names ignore case)")
        seen.add(lower)
    if _find_header(headers, _H_AUTHORIZATION) is not None:
        raise ValueError("headers already hold an Authorization header; drop it before signing")


def sign_request(
    *,
    method: str,
    scheme: str,
    host: str,
    path: str,
    query: Sequence[tuple[str, QueryValue]],
    headers: Mapping[str, str],
    body: bytes | None,
    credentials: AkSkCredentials,
    project_id: str | None,
    now: datetime,
) -> SignedRequest:
    """Sign one request exactly as the provider's SDK does.

    ``host`` is the endpoint's authority as it appears in the URL (``name`` or
    ``name:port``); it is sent and signed verbatim as ``Host``, unless ``headers`` already
    has one. ``path`` is the path as sent on the wire (already percent-encoded, no query).
    An ``X-Sdk-Date`` already in ``headers`` is used as is; otherwise ``now`` gives it.
    The returned headers are the caller's (values stripped, as the SDK sends them) plus
    the ones the signer adds; send them, and the returned ``url``, unchanged.
    """
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme {scheme!r} is not 'http' or 'https'")
    if not host or any(char in host for char in "/?#@ \t\r\n"):
        raise ValueError(f"host {host!r} is not a host[:port] authority")
    if not path.startswith("/") or "?" in path or "#" in path:
        raise ValueError(f"path {path!r} must start with '/' and hold no query or fragment")
    if project_id is not None and not project_id:
        raise ValueError("project_id is empty; pass None to send no X-Project-Id")
    _check_headers(headers)
    now = _utc(now, "now")

    out = {name: value.strip() for name, value in headers.items()}
    if project_id is not None:
        _set_header(out, _H_PROJECT, project_id)
    if credentials.security_token is not None:
        _set_header(out, _H_TOKEN, credentials.security_token)
    # The SDK looks at Content-Type before it strips header values; so does this.
    content_type_key = _find_header(headers, _H_CONTENT_TYPE)
    content_type = headers[content_type_key] if content_type_key else ""
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        _set_header(out, _H_CONTENT_SHA256, _UNSIGNED_PAYLOAD)
    date_key = _find_header(out, _H_DATE)
    if date_key is None:
        date = sdk_date(now)
        out[_H_DATE] = date
    else:
        date = out[date_key]
        _parse_sdk_date(date)
    if _find_header(out, _H_HOST) is None:
        out[_H_HOST] = host

    signed_values = sorted((name.lower(), value) for name, value in out.items() if "_" not in name)
    content_sha_key = _find_header(out, _H_CONTENT_SHA256)
    canonical_query = canonical_query_string(query)
    canonical_request = _canonical_request(
        method=method,
        canonical_uri=_canonical_uri(path),
        canonical_query=canonical_query,
        signed_values=signed_values,
        payload_hash=_payload_hash(body, out[content_sha_key] if content_sha_key else None),
    )
    string_to_sign = _string_to_sign(date, canonical_request)
    signature = _signature(credentials.secret_key, string_to_sign)
    signed_names = ";".join(name for name, _ in signed_values)
    out[_H_AUTHORIZATION] = (
        f"{ALGORITHM} Access={credentials.access_key}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    url = f"{scheme}://{host}{path}" + (f"?{canonical_query}" if canonical_query else "")
    return SignedRequest(
        url=url,
        headers=out,
        canonical_request=canonical_request,
        string_to_sign=string_to_sign,
        signature=signature,
    )


def _parse_query(raw_query: str) -> list[tuple[str, QueryValue]]:
    """Split a received query string back into raw (key, value) pairs."""
    pairs: list[tuple[str, QueryValue]] = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def verify_signature(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
) -> str:
    """Check a received request's ``SDK-HMAC-SHA256`` signature; return its access key.

    ``path`` and ``raw_query`` are as received, still percent-encoded (the query without
    its ``?``). ``headers`` may be any mapping, a case-insensitive multidict included.
    ``secret_for`` maps an access key to its secret key, or ``None`` if it is unknown.
    Raise :class:`SignatureError` if the Authorization header is missing or malformed,
    ``host`` or ``x-sdk-date`` is not signed, a signed header is missing, the date is
    malformed or more than ``max_skew`` away from ``now``, the access key is unknown, or
    the signature does not match.
    """
    now = _utc(now, "now")
    received: dict[str, list[str]] = {}
    for name, value in headers.items():
        received.setdefault(name.lower(), []).append(value)

    authorization = received.get(_H_AUTHORIZATION.lower())
    if not authorization:
        raise SignatureError("no Authorization header")
    if len(authorization) > 1:
        raise SignatureError("more than one Authorization header")
    match = _AUTHORIZATION_RE.fullmatch(authorization[0].strip())
    if match is None:
        raise SignatureError(
            f"malformed Authorization header; expected '{ALGORITHM} Access=<AK>, "
            "SignedHeaders=<a;b;...>, Signature=<64 hex digits>'"
        )
    if match["algorithm"] != ALGORITHM:
        raise SignatureError(
            f"unsupported signing algorithm {match['algorithm']!r}; only {ALGORITHM} is accepted"
        )
    access_key = match["access"]
    signed_names = match["signed"].split(";")
    if len(set(signed_names)) != len(signed_names) or any(
        not name or name != name.lower() or not _HEADER_NAME_RE.fullmatch(name)
        for name in signed_names
    ):
        raise SignatureError(f"malformed SignedHeaders {match['signed']!r}")
    for required in _REQUIRED_SIGNED:
        if required not in signed_names:
            raise SignatureError(f"header {required!r} is not signed; it must be")

    signed_values: list[tuple[str, str]] = []
    for name in signed_names:
        values = received.get(name)
        if not values:
            raise SignatureError(f"signed header {name!r} is missing from the request")
        if len(values) > 1:
            raise SignatureError(f"signed header {name!r} appears more than once")
        signed_values.append((name, values[0]))

    date = dict(signed_values)["x-sdk-date"].strip()
    try:
        signed_at = _parse_sdk_date(date)
    except ValueError as exc:
        raise SignatureError(f"malformed X-Sdk-Date: {exc}") from None
    skew = abs(now - signed_at)
    if skew > max_skew:
        raise SignatureError(
            f"stale X-Sdk-Date {date}: {int(skew.total_seconds())} s from the server's clock, "
            f"more than the {int(max_skew.total_seconds())} s allowed"
        )

    secret_key = secret_for(access_key)
    if secret_key is None:
        raise SignatureError(f"unknown access key {_mask_access_key(access_key)}")

    try:
        canonical_uri = _canonical_uri(path)
        canonical_query = canonical_query_string(_parse_query(raw_query))
    except UnicodeError:
        raise SignatureError("path or query is not valid percent-encoded UTF-8") from None
    # An X-Sdk-Content-Sha256 value only stands in for the body's hash when it is signed.
    content_sha256 = dict(signed_values).get(_H_CONTENT_SHA256.lower())
    canonical_request = _canonical_request(
        method=method,
        canonical_uri=canonical_uri,
        canonical_query=canonical_query,
        signed_values=signed_values,
        payload_hash=_payload_hash(body, content_sha256.strip() if content_sha256 else None),
    )
    expected = _signature(secret_key, _string_to_sign(date, canonical_request))
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureError(
            f"signature does not match for access key {_mask_access_key(access_key)}: check "
            "the secret key, and that nothing in the request changed after it was signed"
        )
    return access_key
