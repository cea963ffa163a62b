"""Tests for connector.source.signing: the provider's vectors, the verifier, properties, the real SDK."""

from __future__ import annotations

import json
import pickle
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connector.source.signing import (
    AkSkCredentials,
    QueryValue,
    SignatureError,
    SignedRequest,
    canonical_query_string,
    sdk_date,
    sign_request,
    verify_signature,
)

# --------------------------------------------------------------------------- the vectors

_VECTORS_RELATIVE = Path("shared/api/signing-vectors.json")


_VECTORS_COPY = Path(__file__).resolve().parents[1] / "data" / "signing-vectors.json"


def _find_vectors() -> Path | None:
    """The team's reference copy beside the repository when there is one, else ours.

    tests/data/signing-vectors.json is a copy of shared/api/signing-vectors.json (produced by
    the provider's SDK), so the vectors run wherever the repository is checked out.
    """
    here = Path(__file__).resolve()
    beside = here.parents[3] / _VECTORS_RELATIVE
    if beside.is_file():
        return beside
    for folder in here.parents:
        candidate = folder / _VECTORS_RELATIVE
        if candidate.is_file():
            return candidate
    return _VECTORS_COPY if _VECTORS_COPY.is_file() else None


VECTORS_PATH = _find_vectors()
VECTORS: list[dict[str, Any]] = (
    json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"] if VECTORS_PATH else []
)
_NO_VECTORS = (
    f"{_VECTORS_RELATIVE} not found beside the repository ({Path(__file__).resolve().parents[3]})"
    " nor in any folder above this test file; put a copy of shared/ beside the repository"
)
_VECTOR_PARAMS = [pytest.param(vector, id=vector["name"]) for vector in VECTORS] or [
    pytest.param(None, marks=pytest.mark.skip(reason=_NO_VECTORS), id="no-vectors")
]

# A moment far from every vector's X-Sdk-Date: the date already in the headers must win.
_UNRELATED_NOW = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


def _sign_vector(vector: dict[str, Any]) -> SignedRequest:
    inputs = vector["inputs"]
    body = inputs["body"]
    return sign_request(
        method=inputs["method"],
        scheme=inputs["scheme"],
        host=inputs["host"],
        path=inputs["path"],
        query=[(key, value) for key, value in inputs["query_params"]],
        headers=inputs["headers"],
        body=None if body is None else body.encode("utf-8"),
        credentials=AkSkCredentials(inputs["ak"], inputs["sk"], inputs["security_token"]),
        project_id=inputs["project_id"],
        now=_UNRELATED_NOW,
    )


def test_vectors_file_holds_seven_vectors() -> None:
    if VECTORS_PATH is None:
        pytest.skip(_NO_VECTORS)
    assert len(VECTORS) == 7


@pytest.mark.parametrize("vector", _VECTOR_PARAMS)
def test_vector_is_reproduced_exactly(vector: dict[str, Any]) -> None:
    signed = _sign_vector(vector)
    intermediate = vector["intermediate"]

    assert (
        canonical_query_string(vector["inputs"]["query_params"])
        == (intermediate["canonical_query_string"])
    )
    assert signed.canonical_request == intermediate["canonical_request"]
    assert signed.string_to_sign == intermediate["string_to_sign"]
    assert signed.headers == vector["expected_headers"]
    # Same order as the SDK adds them, too (not needed on the wire, but shows the mirror).
    assert list(signed.headers) == list(vector["expected_headers"])
    assert signed.url == vector["expected_url"]
    assert signed.headers["Authorization"].endswith(f"Signature={signed.signature}")


@pytest.mark.parametrize("vector", _VECTOR_PARAMS)
def test_vector_passes_verification(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    url = urlsplit(vector["expected_url"])
    body = (inputs["body"] or "").encode("utf-8")
    access_key = verify_signature(
        method=inputs["method"],
        path=url.path,
        raw_query=url.query,
        headers=vector["expected_headers"],
        body=body,
        secret_for={inputs["ak"]: inputs["sk"]}.get,
        now=datetime.strptime(inputs["x_sdk_date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    assert access_key == inputs["ak"]


# --------------------------------------------------------------------------- sign_request

AK = "HPUAEXAMPLEAK0000001"
SK = "exampleSecretKey0123456789abcdefghijklmn"
TOKEN = "gQpjbi1ub3J0aC00EXAMPLETOKEN"
PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
HOST = "hss.cn-north-4.myhuaweicloud.com"
PATH = f"/v5/{PROJECT}/image/local-repositories"
NOW = datetime(2024, 3, 15, 8, 30, 0, tzinfo=UTC)


def _sign(
    *,
    query: list[tuple[str, QueryValue]] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    credentials: AkSkCredentials | None = None,
    host: str = HOST,
    path: str = PATH,
    method: str = "GET",
    now: datetime = NOW,
) -> SignedRequest:
    return sign_request(
        method=method,
        scheme="https",
        host=host,
        path=path,
        query=[("offset", 0), ("limit", 10)] if query is None else query,
        headers={"Content-Type": "application/json"} if headers is None else headers,
        body=body,
        credentials=credentials or AkSkCredentials(AK, SK),
        project_id=PROJECT,
        now=now,
    )


def test_sdk_date_formats_utc() -> None:
    assert sdk_date(NOW) == "20240315T083000Z"
    beijing = timezone(timedelta(hours=8))
    assert sdk_date(datetime(2024, 3, 15, 16, 30, 0, tzinfo=beijing)) == "20240315T083000Z"


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        sdk_date(datetime(2024, 3, 15, 8, 30))
    with pytest.raises(ValueError, match="naive"):
        _sign(now=datetime(2024, 3, 15, 8, 30))


def test_date_comes_from_now_when_not_in_headers() -> None:
    signed = _sign(now=datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    assert signed.headers["X-Sdk-Date"] == "20251231T235959Z"
    assert signed.string_to_sign.split("\n")[1] == "20251231T235959Z"


def test_malformed_date_header_is_rejected() -> None:
    with pytest.raises(ValueError, match="YYYYMMDDTHHMMSSZ"):
        _sign(headers={"X-Sdk-Date": "2024-03-15T08:30:00Z"})


def test_host_keeps_its_port_in_header_and_url() -> None:
    signed = _sign(host="127.0.0.1:8443", query=[])
    assert signed.headers["Host"] == "127.0.0.1:8443"
    assert "\nhost:127.0.0.1:8443\n" in signed.canonical_request
    assert signed.url == f"https://127.0.0.1:8443{PATH}"


def test_a_host_header_already_given_is_kept() -> None:
    signed = _sign(headers={"host": "virtual.example.com"})
    assert "Host" not in signed.headers
    assert signed.headers["host"] == "virtual.example.com"
    assert "\nhost:virtual.example.com\n" in signed.canonical_request
    assert signed.url.startswith(f"https://{HOST}/")


def test_canonical_uri_gets_a_trailing_slash_but_the_url_does_not() -> None:
    signed = _sign(path="/v5/p/a%20b~c%2Fd", query=[])
    assert signed.canonical_request.split("\n")[1] == "/v5/p/a%20b~c/d/"
    assert signed.url == f"https://{HOST}/v5/p/a%20b~c%2Fd"
    assert _sign(path="/", query=[]).canonical_request.split("\n")[1] == "/"


def test_non_json_content_type_signs_an_unsigned_payload() -> None:
    signed = _sign(headers={"Content-Type": "text/plain"}, body=b"hello", method="PUT")
    assert signed.headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert signed.canonical_request.endswith("\nUNSIGNED-PAYLOAD")
    # An empty body still hashes the empty string.
    empty = _sign(headers={"Content-Type": "text/plain"}, body=None)
    assert empty.canonical_request.endswith(
        "\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "v5/no-leading-slash"}, "must start with '/'"),
        ({"path": "/v5?x=1"}, "no query"),
        ({"host": "https://host"}, "authority"),
        ({"headers": {"Authorization": "x"}}, "Authorization"),
        ({"headers": {"A": "1", "a": "2"}}, "twice"),
        ({"headers": {"Bad Name": "1"}}, "token"),
        ({"headers": {"X-Inject": "a\r\nEvil: 1"}}, "CR, LF"),
    ],
)
def test_bad_requests_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _sign(**kwargs)


# --------------------------------------------------------------------------- verify_signature


def _received(signed: SignedRequest) -> tuple[str, str]:
    url = urlsplit(signed.url)
    return url.path, url.query


def _verify(
    signed: SignedRequest,
    *,
    method: str = "GET",
    path: str | None = None,
    raw_query: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    secrets: dict[str, str] | None = None,
    now: datetime = NOW,
) -> str:
    sent_path, sent_query = _received(signed)
    return verify_signature(
        method=method,
        path=sent_path if path is None else path,
        raw_query=sent_query if raw_query is None else raw_query,
        headers=signed.headers if headers is None else headers,
        body=body,
        secret_for=({AK: SK} if secrets is None else secrets).get,
        now=now,
    )


def test_verify_round_trips_sign() -> None:
    assert _verify(_sign()) == AK


def test_verify_round_trips_temporary_credentials_and_a_body() -> None:
    signed = _sign(credentials=AkSkCredentials(AK, SK, TOKEN), body=b'{"a":1}', method="POST")
    assert _verify(signed, method="POST", body=b'{"a":1}') == AK


def test_verify_accepts_a_case_insensitive_multidict() -> None:
    multidict = pytest.importorskip("multidict")
    signed = _sign()
    received = multidict.CIMultiDict({k.lower(): v for k, v in signed.headers.items()})
    received.add("Accept", "*/*")
    assert _verify(signed, headers=received) == AK


def test_verify_ignores_clock_skew_within_the_limit() -> None:
    assert _verify(_sign(), now=NOW + timedelta(minutes=14, seconds=59)) == AK
    assert _verify(_sign(), now=NOW - timedelta(minutes=15)) == AK


def _rejection(signed: SignedRequest, **kwargs: Any) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        _verify(signed, **kwargs)
    message = str(caught.value)
    assert caught.value.reason == message
    for secret in (SK, TOKEN, signed.signature):
        assert secret not in message
    return caught.value


def test_tampered_query_is_rejected() -> None:
    signed = _sign()
    assert "does not match" in _rejection(signed, raw_query="limit=200&offset=0").reason
    assert "does not match" in _rejection(signed, raw_query="limit=10&offset=0&x=1").reason


def test_tampered_signed_header_is_rejected() -> None:
    signed = _sign(credentials=AkSkCredentials(AK, SK, TOKEN))
    for name, value in [("X-Project-Id", "other"), ("Content-Type", "text/plain")]:
        headers = {**signed.headers, name: value}
        assert "does not match" in _rejection(signed, headers=headers).reason


def test_an_added_unsigned_header_is_harmless() -> None:
    signed = _sign()
    assert _verify(signed, headers={**signed.headers, "X_Trace_Id": "abc"}) == AK


def test_tampered_method_path_or_body_is_rejected() -> None:
    signed = _sign(method="POST", body=b"{}")
    assert "does not match" in _rejection(signed, method="POST", body=b"{ }").reason
    assert "does not match" in _rejection(signed, method="PUT", body=b"{}").reason
    assert "does not match" in _rejection(signed, method="POST", body=b"{}", path="/v5/x").reason


def test_wrong_secret_key_is_rejected() -> None:
    wrong = _sign(credentials=AkSkCredentials(AK, "not-the-secret"))
    error = _rejection(wrong)
    assert "does not match" in error.reason
    assert "not-the-secret" not in error.reason


def test_unknown_access_key_is_rejected() -> None:
    error = _rejection(_sign(), secrets={"SOMEONEELSE": SK})
    assert "unknown access key HPUA***" in error.reason
    assert AK not in error.reason


@pytest.mark.parametrize("offset", [timedelta(minutes=15, seconds=1), -timedelta(hours=3)])
def test_stale_date_is_rejected(offset: timedelta) -> None:
    assert "stale X-Sdk-Date" in _rejection(_sign(), now=NOW + offset).reason


def test_malformed_date_is_rejected() -> None:
    signed = _sign()
    headers = {**signed.headers, "X-Sdk-Date": "20240315083000"}
    assert "malformed X-Sdk-Date" in _rejection(signed, headers=headers).reason


def test_missing_or_malformed_authorization_is_rejected() -> None:
    signed = _sign()
    headers = {k: v for k, v in signed.headers.items() if k != "Authorization"}
    assert "no Authorization" in _rejection(signed, headers=headers).reason
    for bad in [
        "Bearer abc",
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date",
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, Signature=abc",
    ]:
        error = _rejection(signed, headers={**signed.headers, "Authorization": bad})
        assert "malformed Authorization" in error.reason
    other = signed.headers["Authorization"].replace("SDK-HMAC-SHA256", "SDK-HMAC-SM3")
    error = _rejection(signed, headers={**signed.headers, "Authorization": other})
    assert "unsupported signing algorithm" in error.reason


@pytest.mark.parametrize("dropped", ["host", "x-sdk-date"])
def test_required_headers_must_be_signed(dropped: str) -> None:
    signed = _sign()
    names = [n for n in ["content-type", "host", "x-project-id", "x-sdk-date"] if n != dropped]
    authorization = f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={';'.join(names)}, Signature="
    headers = {**signed.headers, "Authorization": authorization + "0" * 64}
    assert f"header {dropped!r} is not signed" in _rejection(signed, headers=headers).reason


def test_a_signed_header_missing_from_the_request_is_rejected() -> None:
    signed = _sign()
    headers = {k: v for k, v in signed.headers.items() if k != "X-Project-Id"}
    error = _rejection(signed, headers=headers)
    assert "signed header 'x-project-id' is missing" in error.reason


def test_signature_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(SignatureError("bad signature")))
    assert isinstance(error, SignatureError)
    assert error.reason == "bad signature"


# --------------------------------------------------------------------------- repr


def test_credentials_repr_hides_secrets() -> None:
    credentials = AkSkCredentials(AK, SK, TOKEN)
    for text in (repr(credentials), str(credentials), f"{credentials!r}", repr([credentials])):
        assert SK not in text
        assert TOKEN not in text
        assert AK not in text
        assert "HPUA" in text
    assert "security_token=None" in repr(AkSkCredentials(AK, SK))


def test_credentials_refuse_empty_values() -> None:
    with pytest.raises(ValueError, match="access_key"):
        AkSkCredentials("", SK)
    with pytest.raises(ValueError, match="secret_key"):
        AkSkCredentials(AK, "")
    with pytest.raises(ValueError, match="security_token"):
        AkSkCredentials(AK, SK, "")


def test_signed_request_repr_hides_token_and_signature() -> None:
    signed = _sign(credentials=AkSkCredentials(AK, SK, TOKEN))
    assert TOKEN in signed.canonical_request
    for text in (repr(signed), str(signed)):
        assert TOKEN not in text
        assert SK not in text
        assert signed.signature not in text
        assert "x-security-token:***" in text


# --------------------------------------------------------------------------- properties

_unicode = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_reserved = st.text(alphabet=" !#$%&'()*+,/:;=?@[]~-._%é€😀", max_size=8)
_query_text = st.one_of(_unicode, _reserved)
_query_value: st.SearchStrategy[QueryValue] = st.one_of(
    _query_text, st.integers(min_value=-(2**63), max_value=2**63), st.booleans()
)
# A few fixed names make repeated keys common.
_query_key = st.one_of(st.sampled_from(["tag", "limit", "a b", "é"]), _query_text)
_query = st.lists(st.tuples(_query_key, _query_value), max_size=8)


@given(query=_query)
def test_sign_then_verify_round_trips_any_query(query: list[tuple[str, QueryValue]]) -> None:
    signed = _sign(query=query)
    assert _verify(signed) == AK


@given(query=st.lists(st.tuples(_query_key, _query_value), min_size=1, max_size=8))
def test_verify_rejects_any_query_change(query: list[tuple[str, QueryValue]]) -> None:
    signed = _sign(query=query)
    changed = canonical_query_string([*query[1:], (query[0][0] + "x", query[0][1])])
    with pytest.raises(SignatureError, match="does not match"):
        _verify(signed, raw_query=changed)


@given(data=st.data(), query=_query)
def test_canonical_query_string_ignores_order(
    data: st.DataObject, query: list[tuple[str, QueryValue]]
) -> None:
    shuffled = data.draw(st.permutations(query))
    assert canonical_query_string(shuffled) == canonical_query_string(query)


# --------------------------------------------------------------------------- the real SDK

_TOKEN_CHARS = string.ascii_letters + string.digits + "-_"
_RESERVED_HEADERS = {
    "authorization",
    "content-type",
    "host",
    "x-project-id",
    "x-sdk-content-sha256",
    "x-sdk-date",
    "x-security-token",
}


@st.composite
def _sdk_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A random request, within what the SDK signer itself can take (see the notes)."""
    segments = draw(st.lists(_query_text, max_size=4))
    path = "/" + "/".join(quote(segment, safe="~") for segment in segments)
    if draw(st.booleans()):
        path = path.rstrip("/") + "/"
    query: list[tuple[str, QueryValue]] = draw(st.lists(st.tuples(_query_key, _query_text)))
    # int and bool values only under keys of their own: the SDK sorts the raw values, so a
    # key repeated with mixed types fails there (TypeError), and repeated ints sort as numbers.
    scalars = draw(
        st.dictionaries(_query_text, st.one_of(st.integers(), st.booleans()), max_size=3)
    )
    assume(not set(scalars) & {key for key, _ in query})
    query += list(scalars.items())
    names = draw(
        st.lists(
            st.text(_TOKEN_CHARS, min_size=1, max_size=10).filter(
                lambda name: name.lower() not in _RESERVED_HEADERS
            ),
            unique_by=str.lower,
            max_size=4,
        )
    )
    # ASCII values: the SDK re-decodes non-ASCII values as ISO-8859-1 for its HTTP library.
    values = st.text(string.printable.replace("\r", "").replace("\n", ""), max_size=12)
    headers = {name: draw(values) for name in names}
    content_type = draw(
        st.sampled_from(
            [
                None,
                "application/json",
                "application/json;charset=UTF-8",
                "application/bson",
                "text/plain",
                "application/octet-stream",
            ]
        )
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["Host", "host"]))] = "virtual.example.com:8080"
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))
    headers["X-Sdk-Date"] = moment.strftime("%Y%m%dT%H%M%SZ")
    return {
        "method": draw(st.sampled_from(["GET", "get", "POST", "PUT", "DELETE", "PATCH"])),
        "scheme": draw(st.sampled_from(["https", "http"])),
        "host": draw(st.sampled_from([HOST, "127.0.0.1:8443", "hss.example.com:443"])),
        "path": path,
        "query": query,
        "headers": headers,
        "body": draw(st.one_of(st.none(), st.binary(max_size=64))),
        "ak": draw(st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=20)),
        "sk": draw(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)),
        "project_id": draw(st.one_of(st.none(), st.text("0123456789abcdef", min_size=1))),
        "token": draw(st.one_of(st.none(), st.text(_TOKEN_CHARS, min_size=1, max_size=30))),
    }


@settings(max_examples=300, deadline=None)
@given(case=_sdk_cases())
def test_matches_the_official_sdk_signer(case: dict[str, Any]) -> None:
    pytest.importorskip("huaweicloudsdkcore")
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    request = SdkRequest(
        method=case["method"],
        schema=case["scheme"],
        host=case["host"],
        resource_path=case["path"],
        query_params=list(case["query"]),
        header_params=dict(case["headers"]),
        body=case["body"],
    )
    sdk_credentials = BasicCredentials(case["ak"], case["sk"], case["project_id"])
    if case["token"] is not None:
        sdk_credentials.with_security_token(case["token"])

    # Spy on the SDK's intermediates: wrap (not replace) two of its private methods.
    seen: dict[str, str] = {}
    canonical = Signer._process_canonical_request
    to_sign = Signer._process_string_to_sign

    def spy_canonical(self: Signer, *args: Any) -> str:
        seen["canonical_request"] = canonical(self, *args)
        return seen["canonical_request"]

    def spy_to_sign(self: Signer, *args: Any) -> str:
        seen["string_to_sign"] = to_sign(self, *args)
        return seen["string_to_sign"]

    with (
        patch.object(Signer, "_process_canonical_request", spy_canonical),
        patch.object(Signer, "_process_string_to_sign", spy_to_sign),
    ):
        sdk_credentials.sign_request(request)

    ours = sign_request(
        method=case["method"],
        scheme=case["scheme"],
        host=case["host"],
        path=case["path"],
        query=case["query"],
        headers=case["headers"],
        body=case["body"],
        credentials=AkSkCredentials(case["ak"], case["sk"], case["token"]),
        project_id=case["project_id"],
        now=_UNRELATED_NOW,
    )
    assert ours.canonical_request == seen["canonical_request"]
    assert ours.string_to_sign == seen["string_to_sign"]
    assert ours.headers == request.header_params
    assert ours.url == request.url


def test_the_copy_of_the_vectors_matches_the_reference() -> None:
    reference = Path(__file__).resolve().parents[3] / _VECTORS_RELATIVE
    if not reference.is_file():
        pytest.skip("no shared/ beside the repository to compare with")
    assert _VECTORS_COPY.read_bytes() == reference.read_bytes()
