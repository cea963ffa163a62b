"""Configuration: validation with clear errors, the TOML file, credentials sources."""

from __future__ import annotations

import math
import pickle
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector import (
    ApiError,
    AuthError,
    Config,
    ConfigError,
    ConnectorError,
    DataLossError,
    FetchSettings,
    Filters,
    ProjectReport,
    QuarantineLimit,
    RetryPolicy,
    RunReport,
    Secret,
    ThrottledError,
)
from connector.cli import build_parser, config_from_args
from connector.errors import (
    InvalidRequestError,
    MalformedResponseError,
    OutputError,
    QuarantineLimitError,
    ServerError,
    TransportError,
    is_permanent,
)
from connector.lake.writer import encode_segment, partition_path
from connector.redaction import Redactor
from connector.settings.config import (
    Auth,
    ReadDate,
    Target,
    TotalTolerance,
    check_snapshot_date,
    endpoint_for_region,
    iam_endpoint_for,
)
from connector.settings.credentials import auth_from_environment, read_credentials_file
from connector.settings.file import load_config_file

TOKEN_ENV = {"HSS_AUTH_TOKEN": "t0ken-value"}


def _args(*argv: str) -> object:
    return build_parser().parse_args(["sync", *argv])


def test_region_table_and_the_eu_exception() -> None:
    assert endpoint_for_region("cn-north-4") == "https://hss.cn-north-4.myhuaweicloud.com"
    assert endpoint_for_region("eu-west-101") == "https://hss.eu-west-101.myhuaweicloud.eu"
    assert iam_endpoint_for("https://hss.ap-southeast-3.myhuaweicloud.com") == (
        "https://iam.ap-southeast-3.myhuaweicloud.com"
    )
    with pytest.raises(ConfigError, match="unknown region 'nowhere-1'"):
        endpoint_for_region("nowhere-1")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"scan_status": "waiting"}, "waiting_for_scan"),
        ({"image_size": -1}, "^image_size: "),
        ({"has_vul": "yes"}, "^has_vul: "),
        ({"start_latest_scan_time": 5, "end_latest_scan_time": 1}, "range is empty"),
        ({"end_latest_update_time": 5}, "go together"),
    ],
)
def test_filters_are_validated_before_any_request(filters: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Filters(**filters)  # type: ignore[arg-type]


def test_filter_params_are_what_the_api_expects() -> None:
    params = Filters(
        has_vul=True, image_name="nginx", enterprise_project_id="all_granted_eps"
    ).params()
    assert params == [
        ("enterprise_project_id", "all_granted_eps"),
        ("image_name", "nginx"),
        ("has_vul", True),
    ]


@pytest.mark.parametrize(
    ("text", "allowed", "refused"),
    [("50", (50, 10**6), (51, 10**6)), ("1%", (10, 1000), (11, 1000)), ("0", (0, 5), (1, 5))],
)
def test_quarantine_limit(text: str, allowed: tuple[int, int], refused: tuple[int, int]) -> None:
    limit = QuarantineLimit.parse(text)
    assert limit.allows(*allowed) and not limit.allows(*refused)
    assert str(limit) == text


def test_config_file_with_projects_across_regions(tmp_path: Path) -> None:
    path = tmp_path / "sync.toml"
    path.write_text(
        'out = "lake"\nregion = "cn-north-4"\nrate = 20\n[filters]\nhas_vul = true\n'
        '[[projects]]\nid = "p1"\n[[projects]]\nid = "p2"\nregion = "ap-southeast-3"\n'
        '[[projects]]\nid = "p3"\nendpoint = "https://hss.example.com"\n'
    )
    config = config_from_args(_args("--config", str(path), "--rate", "7"), TOKEN_ENV)
    assert config.fetch.rate == 7  # the flag wins over the file
    assert config.filters.has_vul is True
    assert config.targets == (
        Target("p1", "https://hss.cn-north-4.myhuaweicloud.com"),
        Target("p2", "https://hss.ap-southeast-3.myhuaweicloud.com"),
        Target("p3", "https://hss.example.com"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('out = "x"\nrat = 5\n', "key rat: unknown key"),
        ('out = "x"\nrate = "fast"\n', "key rate: expected a number, got 'fast'"),
        ('token = "abc"\n', "key token: secrets do not belong"),
        ("[filters]\nhas_vuln = true\n", "key filters.has_vuln: unknown filter"),
        ('[[projects]]\nname = "p1"\n', r"key projects\[1\]: unknown key 'name'"),
        ("scan_status = 'failed'\n[filters]\nscan_status = 'failed'\n", "given twice"),
        ("out = \n", "not valid TOML"),
    ],
)
def test_config_file_errors_name_the_key_and_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        config_from_args(_args("--config", str(path)), TOKEN_ENV)
    assert str(info.value).startswith(f"file {path}")


def test_credentials_come_from_exactly_one_source(tmp_path: Path) -> None:
    assert auth_from_environment(TOKEN_ENV).kind == "token"
    assert auth_from_environment({"HSS_ACCESS_KEY": "AK", "HSS_SECRET_KEY": "SK"}).kind == "aksk"
    iam = auth_from_environment(
        {"HSS_IAM_USER": "u", "HSS_IAM_PASSWORD": "p", "HSS_IAM_DOMAIN": "d"}
    )
    assert iam.kind == "iam"
    with pytest.raises(ConfigError, match="several credentials"):
        auth_from_environment({**TOKEN_ENV, "HSS_ACCESS_KEY": "AK", "HSS_SECRET_KEY": "SK"})
    with pytest.raises(ConfigError, match="go together"):
        auth_from_environment({"HSS_ACCESS_KEY": "AK"})
    with pytest.raises(ConfigError, match="no credentials"):
        auth_from_environment({})


def test_credentials_files_csv_and_toml(tmp_path: Path) -> None:
    csv = tmp_path / "credentials.csv"
    csv.write_text("User Name,Access Key Id,Secret Access Key\nalice,HPUAK123,sEcReT456\n")
    creds = read_credentials_file(str(csv))
    assert (creds.access_key, creds.secret_key) == ("HPUAK123", "sEcReT456")
    toml = tmp_path / "creds.toml"
    toml.write_text('access_key = "AK"\nsecret_key = "SK"\nsecurity_token = "ST"\n')
    assert read_credentials_file(str(toml)).security_token == "ST"
    broken = tmp_path / "broken"
    broken.write_text("secret_key = sEcReT-not-quoted\n")
    with pytest.raises(ConfigError) as info:
        read_credentials_file(str(broken))
    assert "sEcReT" not in str(info.value)


def test_secrets_do_not_show() -> None:
    auth = Auth(token=Secret("very-secret-token"))
    config = Config(projects=("p1",), endpoint="https://hss.example.com", out="o", auth=auth)
    assert "very-secret-token" not in repr(config) + str(auth) + repr(auth)
    assert pickle.loads(pickle.dumps(auth)) == auth


def test_errors_pickle_with_their_context() -> None:
    errors = [
        ConfigError("bad value", where="--rate"),
        AuthError(
            "rejected",
            project_id="p",
            offset=0,
            status=401,
            error_code="APIG.0301",
            error_msg="Incorrect IAM",
            request_id="abc",
            attempts=1,
        ),
        ThrottledError("slow down", project_id="p", offset=398, status=429),
        DataLossError("gap", project_id="p"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        if isinstance(error, ApiError):
            assert copy.context() == error.context()
    assert "request id abc" in str(errors[1]) and "APIG.0301" in str(errors[1])


@given(st.text(min_size=0, max_size=400))
def test_partition_segments_cannot_escape_their_folder(value: str) -> None:
    segment = encode_segment(value)
    assert "/" not in segment and "\\" not in segment and "\x00" not in segment
    assert segment not in ("", ".", "..")
    assert len(segment) <= 120
    assert partition_path(value, __import__("datetime").date(2026, 1, 1)).count("/") == 1


def test_project_ids_are_validated(tmp_path: Path) -> None:
    for bad in ("../etc", "a/b", "x\x00y", ".."):
        with pytest.raises(ConfigError, match=r"^project_ids: "):
            Config(
                projects=(bad,),
                endpoint="https://h.example.com",
                out="o",
                auth=Auth(token=Secret("t")),
            )


def test_proxies_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.source.proxies import proxy_for

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "hss.dedicated.example")
    proxy_for.cache_clear()
    try:
        assert proxy_for("https://hss.cn-north-4.myhuaweicloud.com") == "http://proxy.internal:3128"
        assert proxy_for("https://hss.dedicated.example") is None
        assert proxy_for("http://127.0.0.1:8080") is None  # no HTTP_PROXY for http://
    finally:
        proxy_for.cache_clear()


# ------------------------------------------------------- numbers, files, dates, secrets


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--read-timeout", "nan"),
        ("--max-retry-time", "nan"),
        ("--connect-timeout", "inf"),
        ("--request-timeout", "1e999"),
        ("--rate", "nan"),
    ],
)
def test_a_float_flag_that_is_not_finite_is_refused_by_its_name(flag: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_args(
            _args("--project-id", "p1", "--out", "o", "--region", "cn-north-4", flag, value),
            TOKEN_ENV,
        )
    assert str(info.value) == f"flag {flag}: expected a finite number, got '{value}'"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--connect-timeout", "-1"),
        ("--read-timeout", "0"),
        ("--request-timeout", "1e9"),
        ("--max-retry-time", "-5"),
        ("--max-retry-time", "0"),
    ],
)
def test_a_float_flag_out_of_range_names_the_real_flag(flag: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^flag {flag}: must be a number of seconds"):
        config_from_args(
            _args("--project-id", "p1", "--out", "o", "--region", "cn-north-4", flag, value),
            TOKEN_ENV,
        )


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"read_timeout_s": math.nan}, "read_timeout"),
        ({"connect_timeout_s": math.inf}, "connect_timeout"),
        ({"request_timeout_s": -1.0}, "request_timeout"),
        ({"rate": math.nan}, "rate"),
        ({"retry": "replace"}, "max_retry_time"),
    ],
)
def test_settings_built_in_code_are_checked_the_same_way(
    changes: dict[str, object], where: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{where}: "):
        if changes.get("retry") == "replace":
            RetryPolicy(max_elapsed_s=math.nan)
        else:
            FetchSettings(**changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^max_quarantined: "):
        QuarantineLimit(count=None, percent=math.nan)


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ('[filters]\nscan_status = "waiting"\n', "filters.scan_status", "waiting_for_scan"),
        ("[filters]\nimage_size = -1\n", "filters.image_size", "between 0 and 2^63-1"),
        ("read_timeout = nan\n", "read_timeout", "expected a finite number, got nan"),
        ("max_retry_time = inf\n", "max_retry_time", "expected a finite number, got inf"),
        ("connect_timeout = -1\n", "connect_timeout", "must be a number of seconds"),
        ('snapshot_date = "2001-01-01"\n', "snapshot_date", "not the date the inventory is read"),
        ('max_quarantined = "lots"\n', "max_quarantined", "a percentage like 1%"),
    ],
)
def test_a_bad_value_from_the_config_file_is_named_by_its_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    path = tmp_path / "sync.toml"
    path.write_text('out = "lake"\nregion = "cn-north-4"\n' + text + '[[projects]]\nid = "p1"\n')
    with pytest.raises(ConfigError) as info:
        config_from_args(_args("--config", str(path)), TOKEN_ENV)
    assert str(info.value).startswith(f"file {path} key {key}: "), str(info.value)
    assert message in str(info.value)


def test_a_flag_overriding_a_bad_file_value_is_named_as_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "sync.toml"
    path.write_text('out = "lake"\nregion = "cn-north-4"\nread_timeout = 5\n')
    with pytest.raises(ConfigError, match=r"^flag --read-timeout: "):
        config_from_args(
            _args("--config", str(path), "--project-id", "p", "--read-timeout", "0"), TOKEN_ENV
        )


@pytest.mark.parametrize(
    ("encoding", "looks"),
    [
        ("utf-16", "it looks like UTF-16"),
        ("utf-16-le", "UTF-16 without a byte-order mark"),
        ("latin-1", "is not UTF-8"),
    ],
)
def test_a_config_file_not_in_utf8_is_a_clear_error(
    tmp_path: Path, encoding: str, looks: str
) -> None:
    path = tmp_path / "sync.toml"
    path.write_text('out = "lake"\n# café\nrate = 5\n', encoding=encoding)
    with pytest.raises(ConfigError) as info:
        load_config_file(str(path))
    assert str(info.value).startswith(f"file {path}: the config file is not UTF-8 text")
    assert looks in str(info.value) and "save it as UTF-8" in str(info.value)


def test_a_utf8_config_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "sync.toml"
    path.write_text('out = "lake"\nrate = 5\n', encoding="utf-8-sig")
    assert load_config_file(str(path))["rate"].value == 5


def test_the_snapshot_date_rule() -> None:
    today = date(2026, 11, 28)
    assert check_snapshot_date(today, today=today) == "given"
    assert check_snapshot_date(date(2026, 11, 27), today=today) == "given"
    assert check_snapshot_date(ReadDate(2026, 11, 28), today=today) == "default"
    for refused in (date(2026, 11, 26), date(2026, 11, 29), date(2025, 11, 28)):
        with pytest.raises(ConfigError, match=r"^snapshot_date: .* is not the date"):
            check_snapshot_date(refused, today=today)
        assert check_snapshot_date(refused, allow_any=True, today=today) == "opt-in"


def test_a_default_snapshot_date_is_taken_again_when_the_run_starts() -> None:
    auth = Auth(token=Secret("t0ken-value"))
    built = Config(projects=("p1",), endpoint="https://hss.example.com", out="o", auth=auth)
    assert built.snapshot_date_origin == "default"
    assert built.snapshot_date == datetime.now(UTC).date() or built.snapshot_date == (
        datetime.now(UTC).date() - timedelta(days=1)
    )
    stale = replace(built, snapshot_date=ReadDate(2020, 1, 1))  # built long ago, run today
    assert stale.snapshot_date_origin == "default"
    assert stale.at_start().snapshot_date == ReadDate.now()
    assert replace(built, snapshot_date=datetime.now(UTC).date()).snapshot_date_origin == "given"
    with pytest.raises(ConfigError, match=r"^snapshot_date: "):
        replace(built, snapshot_date=date(2020, 1, 1))
    assert (
        replace(
            built, snapshot_date=date(2020, 1, 1), allow_any_snapshot_date=True
        ).snapshot_date_origin
        == "opt-in"
    )


def test_every_enterprise_project_is_the_default() -> None:
    assert Filters().enterprise_project_id == "all_granted_eps"
    assert Filters().params() == [("enterprise_project_id", "all_granted_eps")]
    assert Filters(enterprise_project_id="0").params() == [("enterprise_project_id", "0")]
    config = config_from_args(
        _args("--project-id", "p", "--out", "o", "--region", "cn-north-4"), TOKEN_ENV
    )
    assert config.filters.enterprise_project_id == "all_granted_eps"


def test_the_redactor_masks_every_form_of_a_secret() -> None:
    secret = 'tok+en/with=chars"and\\quotes'
    redact = Redactor([secret, "short", None])
    assert redact(f"a {secret} b") == "a *** b"
    assert redact(f"url?t={quote(secret, safe='')}") == "url?t=***"
    assert redact(orjson.dumps({"msg": f"token {secret}"}).decode()) == '{"msg":"token ***"}'
    assert redact("short stays") == "short stays"  # under six characters: not a secret
    redact.add("issued-later-token")
    assert redact.scrub({"k issued-later-token": ["x issued-later-token", 3]}) == {
        "k ***": ["x ***", 3]
    }


def test_the_report_redacts_every_string_it_emits() -> None:
    report = RunReport(
        run_id="r",
        snapshot_date="2026-11-28",
        endpoint="e",
        started_at="s",
        redactor=Redactor(["s3cr3t-token-value"]),
    )
    project = ProjectReport("p1", error="HTTP 401, error_msg 'bad token s3cr3t-token-value'")
    project.unknown_enum_values = {"scan_status": {"s3cr3t-token-value": 1}}
    report.projects["p1"] = project
    text = report.to_json().decode() + report.summary()
    assert "s3cr3t-token-value" not in text
    assert "bad token ***" in text


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (ConfigError("bad"), True),
        (AuthError("rejected", status=401), True),
        (InvalidRequestError("rejected", status=400), True),
        (ThrottledError("slow down", status=429), False),
        (ServerError("down", status=503), False),
        (TransportError("reset"), False),
        (MalformedResponseError("html"), False),
        (OutputError("disk full"), False),
        (DataLossError("gap"), False),
        (QuarantineLimitError("too many"), False),
    ],
)
def test_an_error_says_whether_retrying_can_help(error: ConnectorError, permanent: bool) -> None:
    assert error.permanent is permanent
    assert is_permanent(type(error).__name__) is permanent
    assert pickle.loads(pickle.dumps(error)).permanent is permanent


def test_only_the_connectors_own_errors_are_known_permanent() -> None:
    for name in ("ValueError", "Interrupted", "ConnectorError", "", None, "is_permanent"):
        assert not is_permanent(name)


# ------------------------------------------------------------- total_num tolerance

_TOLERANCES = st.one_of(
    st.builds(TotalTolerance, records=st.integers(min_value=0, max_value=10**12)),
    st.builds(
        TotalTolerance,
        percent=st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False),
    ),
)


@given(_TOLERANCES)
def test_a_tolerance_reads_back_what_it_writes(tolerance: TotalTolerance) -> None:
    assert TotalTolerance.parse(str(tolerance)) == tolerance


@given(_TOLERANCES, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1))
def test_a_tolerance_is_symmetric_around_the_records(
    tolerance: TotalTolerance, total_num: int, difference: int
) -> None:
    """Over-counting and under-counting by the same amount are judged alike; the records
    themselves are always allowed, and a larger difference never is when a smaller is not."""
    above, below = total_num + difference, total_num - difference
    assert tolerance.allows(total_num, above) == tolerance.allows(total_num, below)
    assert tolerance.allows(total_num, total_num)
    if not tolerance.allows(total_num, above):
        assert not tolerance.allows(total_num, above + 1)


@given(st.integers(0, 100), st.integers(0, 2**31 - 1))
def test_a_whole_percentage_is_exact_integer_arithmetic(percent: int, total_num: int) -> None:
    """floor(percent / 100 * total_num), without binary floating point's 28.999...: 29% of
    100 allows 29."""
    tolerance = TotalTolerance.parse(f"{percent}%")
    limit = percent * total_num // 100
    assert tolerance.allows(total_num, total_num - limit)
    assert not tolerance.allows(total_num, total_num - limit - 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", TotalTolerance()),
        ("0%", TotalTolerance()),
        ("10", TotalTolerance(records=10)),
        (" 10 ", TotalTolerance(records=10)),
        ("0.5%", TotalTolerance(percent=0.5)),
        ("2 %", TotalTolerance(percent=2.0)),
        ("100%", TotalTolerance(percent=100.0)),
    ],
)
def test_a_tolerance_is_records_or_a_percentage(text: str, expected: TotalTolerance) -> None:
    assert TotalTolerance.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", " ", "-1", "-0.5%", "+1", "nan", "nan%", "inf%", "101%", "1e3", "1.5", "%", "x"]
)
def test_a_tolerance_refuses_what_it_does_not_accept(text: str) -> None:
    with pytest.raises(ValueError, match="a number of records like 10 or a percentage"):
        TotalTolerance.parse(text)


def test_a_tolerance_is_records_or_a_percentage_not_both() -> None:
    with pytest.raises(ConfigError, match="not both"):
        TotalTolerance(records=1, percent=1.0)
    assert str(TotalTolerance(records=10)) == "10" and str(TotalTolerance(percent=0.5)) == "0.5%"
    assert TotalTolerance(records=3).allows(100, 97) and not TotalTolerance(records=3).allows(
        100, 96
    )
    assert TotalTolerance(percent=1).allows(250, 252) and not TotalTolerance(percent=1).allows(
        250, 253
    )
