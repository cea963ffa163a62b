"""HssHook and HssImageSyncOperator: how Airflow things become a Config, without Airflow.

``airflow.sdk`` is replaced by a small stand-in here (the project's virtualenv has no
Airflow); tests/ecosystem/test_airflow.py runs the same classes under the real Airflow.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import connector
from connector import (
    AuthError,
    Config,
    ConfigError,
    Filters,
    OutputError,
    ProjectReport,
    QuarantineLimit,
    RunReport,
)
from connector.job import pipeline

TOKEN = "tok-" + "a1b2c3d4" * 6


def _today() -> date:
    """Asked at the moment of use: a test may run across midnight."""
    return datetime.now(UTC).date()


SECRET_KEY = "sk-" + "f9e8d7c6" * 5
SECURITY_TOKEN = "st-" + "0123abcd" * 5


@dataclass
class FakeConnection:
    conn_id: str
    login: str | None = None
    password: str | None = TOKEN
    host: str | None = None
    port: int | None = None
    schema: str | None = None
    extra_dejson: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeTaskInstance:
    pushed: dict[str, Any] = field(default_factory=dict)
    try_number: int = 1

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class StandIn:
    """What the tests see of the fake Airflow: connections, masked secrets, exceptions."""

    def __init__(self) -> None:
        self.connections: dict[str, FakeConnection] = {}
        self.masked: list[str] = []

        class AirflowException(Exception):
            pass

        class AirflowFailException(AirflowException):
            pass

        class AirflowSkipException(AirflowException):
            pass

        stand_in = self

        class BaseHook:
            def __init__(self, logger_name: str | None = None) -> None:
                self.log = logging.getLogger("airflow.task.hooks")

            @classmethod
            def get_connection(cls, conn_id: str) -> FakeConnection:
                return stand_in.connections[conn_id]

        @dataclass(frozen=True)
        class Asset:  # as Airflow's: a name or a URI, each the other when not given
            name: str | None = None
            uri: str | None = None
            group: str | None = None

            def __post_init__(self) -> None:
                object.__setattr__(self, "uri", self.uri or self.name)
                object.__setattr__(self, "name", self.name or self.uri)

        class BaseOperator:
            def __init__(self, *, task_id: str, outlets: Any = None, **kwargs: Any) -> None:
                self.task_id = task_id
                self.outlets = list(outlets or [])
                self.log = logging.getLogger("airflow.task.operators")

        self.AirflowException = AirflowException
        self.AirflowFailException = AirflowFailException
        self.AirflowSkipException = AirflowSkipException
        self.sdk = types.ModuleType("airflow.sdk")
        self.sdk.BaseHook = BaseHook  # type: ignore[attr-defined]
        self.sdk.BaseOperator = BaseOperator  # type: ignore[attr-defined]
        self.sdk.Asset = Asset  # type: ignore[attr-defined]
        self.exceptions = types.ModuleType("airflow.sdk.exceptions")
        self.exceptions.AirflowException = AirflowException  # type: ignore[attr-defined]
        self.exceptions.AirflowFailException = AirflowFailException  # type: ignore[attr-defined]
        self.exceptions.AirflowSkipException = AirflowSkipException  # type: ignore[attr-defined]
        self.log = types.ModuleType("airflow.sdk.log")
        self.log.mask_secret = self.masked.append  # type: ignore[attr-defined]

    def connect(self, conn_id: str = "hss_default", **fields: Any) -> FakeConnection:
        extras = {"endpoint": "https://hss.example.test", "project_ids": ["p1"]}
        conn = FakeConnection(conn_id, extra_dejson=extras)
        for name, value in fields.items():
            if name in ("login", "password", "host", "port", "schema"):
                setattr(conn, name, value)
            elif value is None:
                extras.pop(name, None)
            else:
                extras[name] = value
        self.connections[conn_id] = conn
        return conn


@pytest.fixture
def airflow(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn()
    package = types.ModuleType("airflow")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "airflow", package)
    monkeypatch.setitem(sys.modules, "airflow.sdk", stand_in.sdk)
    monkeypatch.setitem(sys.modules, "airflow.sdk.exceptions", stand_in.exceptions)
    monkeypatch.setitem(sys.modules, "airflow.sdk.log", stand_in.log)
    for name in [m for m in sys.modules if m.startswith("connector.airflow")]:
        if name not in ("connector.airflow.provider", "connector.airflow.lineage"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(connector, "airflow", None, raising=False)
    return stand_in


@pytest.fixture
def module(airflow: StandIn) -> Any:
    return importlib.import_module("connector.airflow")


def config(module: Any, conn_id: str = "hss_default", **overrides: Any) -> Config:
    result: Config = module.HssHook(conn_id).get_config(**{"out": "/lake", **overrides})
    return result


# ------------------------------------------------------------------------------ the hook


def test_a_token_connection(module: Any, airflow: StandIn) -> None:
    airflow.connect(project_ids="p1, p2,p3", rate="2.5", concurrency="4")

    built = config(module)

    assert built.auth.token is not None and built.auth.token.reveal() == TOKEN
    assert built.endpoint == "https://hss.example.test"
    assert built.project_ids == ("p1", "p2", "p3")
    assert (built.fetch.rate, built.fetch.concurrency) == (2.5, 4)
    assert built.out == "/lake"
    assert built.progress == "log"
    assert TOKEN in airflow.masked


def test_a_region_and_a_project_list(module: Any, airflow: StandIn) -> None:
    airflow.connect(endpoint=None, region="cn-north-4", project_ids=["a", "b"])

    built = config(module)

    assert built.endpoint == "https://hss.cn-north-4.myhuaweicloud.com"
    assert built.project_ids == ("a", "b")


def test_an_access_key_pair(module: Any, airflow: StandIn) -> None:
    airflow.connect(
        auth="aksk", login="AKIDEXAMPLE", password=SECRET_KEY, security_token=SECURITY_TOKEN
    )

    aksk = config(module).auth.aksk

    assert aksk is not None
    assert (aksk.access_key, aksk.secret_key, aksk.security_token) == (
        "AKIDEXAMPLE",
        SECRET_KEY,
        SECURITY_TOKEN,
    )
    assert {SECRET_KEY, SECURITY_TOKEN} <= set(airflow.masked)


def test_an_iam_user(module: Any, airflow: StandIn) -> None:
    airflow.connect(
        auth="iam",
        login="robot",
        password=SECRET_KEY,
        domain="acme",
        endpoint=None,
        region="cn-north-4",
    )

    iam = config(module).auth.iam

    assert iam is not None
    assert (iam.user, iam.password.reveal(), iam.domain) == ("robot", SECRET_KEY, "acme")


def test_plain_http_to_another_host_needs_the_extra(module: Any, airflow: StandIn) -> None:
    airflow.connect(endpoint="http://hss.internal.test:8080", allow_insecure_http="true")

    built = config(module)

    assert built.endpoint == "http://hss.internal.test:8080"
    assert built.allow_insecure_http


@pytest.mark.parametrize(
    ("fields", "endpoint"),
    [
        ({"host": "hss.example.test"}, "https://hss.example.test"),
        ({"host": "hss.example.test", "port": 8443}, "https://hss.example.test:8443"),
        ({"host": "hss.example.test", "schema": "HTTPS"}, "https://hss.example.test"),
        ({"host": "https://hss.example.test/"}, "https://hss.example.test"),
        ({"host": "127.0.0.1", "port": 9000, "schema": "http"}, "http://127.0.0.1:9000"),
        ({"host": "::1", "port": 9000, "schema": "http"}, "http://[::1]:9000"),
        ({"host": "localhost", "schema": "http"}, "http://localhost"),
    ],
)
def test_the_host_port_and_schema_are_the_endpoint(
    module: Any, airflow: StandIn, fields: dict[str, Any], endpoint: str
) -> None:
    airflow.connect(endpoint=None, **fields)

    assert config(module).endpoint == endpoint


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"host": "hss.example.test"}, None),  # the extra's endpoint, written the same
        ({"host": "HSS.example.test", "port": 443}, None),  # the default port, written out
        ({"host": "hss.cn-north-4.myhuaweicloud.com", "region": "cn-north-4"}, None),
        ({"host": "hss.other.test"}, "connection 'hss_default' extra endpoint"),
        ({"host": "hss.example.test", "port": 8443}, "connection 'hss_default' extra endpoint"),
        ({"host": "hss.example.test", "schema": "http"}, "connection 'hss_default' extra endpoint"),
        (
            {"host": "hss.example.test", "region": "cn-north-4"},
            "connection 'hss_default' extra region",
        ),
    ],
)
def test_a_host_and_an_endpoint_extra_must_agree(
    module: Any, airflow: StandIn, fields: dict[str, Any], named: str | None
) -> None:
    if "region" in fields:
        fields = {**fields, "endpoint": None}
    airflow.connect(**fields)

    if named is None:
        assert config(module).endpoint == f"https://{fields['host'].lower()}"
        return
    with pytest.raises(ConfigError) as caught:
        config(module)
    message = str(caught.value)
    assert message.startswith("connection 'hss_default' host: names the endpoint ")
    assert named in message


def test_a_host_with_an_unknown_region_names_the_region(module: Any, airflow: StandIn) -> None:
    airflow.connect(endpoint=None, host="hss.example.test", region="mars-1")

    with pytest.raises(ConfigError, match="unknown region 'mars-1'") as caught:
        config(module)
    assert str(caught.value).startswith("connection 'hss_default' extra region: ")


def test_plain_http_to_a_host_that_is_not_loopback_needs_the_extra(
    module: Any, airflow: StandIn
) -> None:
    airflow.connect(endpoint=None, host="hss.example.test", schema="http")

    with pytest.raises(ConfigError, match="plain http://") as caught:
        config(module)
    assert str(caught.value).startswith("connection 'hss_default' host: ")

    airflow.connect(endpoint=None, host="hss.example.test", schema="http", allow_insecure_http=True)
    assert config(module).endpoint == "http://hss.example.test"


@pytest.mark.parametrize(
    ("fields", "where", "says"),
    [
        ({"schema": "ftp"}, "schema", "https (default) or http, got 'ftp'"),
        ({"host": "http://hss.example.test", "schema": "https"}, "host", "give one of them"),
        ({"host": "hss.example.test:8443", "port": 443}, "host", "give one of them"),
        ({"port": 70000}, "port", "expected a TCP port (1-65535), got 70000"),
    ],
)
def test_a_bad_host_port_or_schema_is_named(
    module: Any, airflow: StandIn, fields: dict[str, Any], where: str, says: str
) -> None:
    airflow.connect(endpoint=None, **{"host": "hss.example.test", **fields})

    with pytest.raises(ConfigError) as caught:
        config(module)
    assert str(caught.value).startswith(f"connection 'hss_default' {where}: ")
    assert says in str(caught.value)


def test_arguments_win_over_the_connection(module: Any, airflow: StandIn) -> None:
    airflow.connect(rate=10, concurrency=8)
    today = _today()

    built = config(module, projects=("x1",), rate=0.5, concurrency=2, snapshot_date=today)

    assert built.project_ids == ("x1",)
    assert (built.fetch.rate, built.fetch.concurrency) == (0.5, 2)
    assert built.snapshot_date == today


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"auth": "oauth"}, "extra auth"),
        ({"endpoint": None, "region": "mars-1"}, "extra region"),
        ({"region": "cn-north-4"}, "give endpoint or region, not both"),
        ({"endpoint": None}, "has no endpoint: give an endpoint or a region"),
        ({"endpoint": "ftp://hss.example.test"}, "extra endpoint"),
        ({"endpoint": "http://hss.internal.test"}, "allow_insecure_http"),
        ({"allow_insecure_http": "yes"}, "extra allow_insecure_http"),
        ({"rate": "fast"}, "extra rate"),
        ({"rate": -1}, "extra rate"),
        ({"concurrency": 0}, "extra concurrency"),
        ({"concurrency": 2.5}, "extra concurrency"),
        ({"project_ids": "ok,../etc"}, "extra project_ids"),
        ({"project_ids": None}, "extra project_ids"),
        ({"project_ids": " , "}, "extra project_ids"),
        ({"project_ids": 42}, "extra project_ids"),
        ({"projects": ["p1"]}, "extra projects"),
        ({"password": ""}, "password (the IAM token) is empty"),
        ({"auth": "aksk", "login": None, "password": SECRET_KEY}, "the access key is needed"),
        ({"auth": "aksk", "login": "AK", "password": None}, "password (the secret key)"),
        ({"auth": "aksk", "login": "AK", "security_token": ""}, "extra security_token"),
        ({"auth": "iam", "login": "robot"}, "extra domain"),
        ({"auth": "iam", "domain": "acme", "iam_endpoint": "nope"}, "extra iam_endpoint"),
    ],
)
def test_a_bad_connection_names_itself_and_the_key(
    module: Any, airflow: StandIn, fields: dict[str, Any], names: str
) -> None:
    airflow.connect("hss_prod", **fields)

    with pytest.raises(ConfigError) as caught:
        config(module, "hss_prod")

    message = str(caught.value)
    assert "connection 'hss_prod'" in message
    assert names in message
    assert TOKEN not in message and SECRET_KEY not in message


def test_a_bad_argument_names_the_argument(module: Any, airflow: StandIn) -> None:
    airflow.connect()

    with pytest.raises(ConfigError, match="argument rate"):
        config(module, rate=-2)
    with pytest.raises(ConfigError, match="argument out"):
        module.HssHook().get_config()
    with pytest.raises(TypeError, match="colour"):
        config(module, colour="red")


def test_the_project_list_for_fanning_out(module: Any, airflow: StandIn) -> None:
    airflow.connect(project_ids="p1,p2")

    assert module.HssHook().project_ids() == ["p1", "p2"]
    assert config(module, projects="p3,p4").project_ids == ("p3", "p4")


def test_secrets_stay_out_of_the_config_repr(module: Any, airflow: StandIn) -> None:
    airflow.connect(auth="aksk", login="AKIDEXAMPLE", password=SECRET_KEY)

    assert SECRET_KEY not in repr(config(module))


# -------------------------------------------------------------------------- the operator


def _report(snapshot: str, *projects: ProjectReport) -> RunReport:
    report = RunReport(
        run_id="20261128T000000Z-abcdef",
        snapshot_date=snapshot,
        endpoint="https://hss.example.test",
        started_at="2026-11-28T00:00:00+00:00",
    )
    report.projects = {p.project_id: p for p in projects}
    failed = [p for p in projects if p.status == "failed"]
    report.status = "failed" if failed else "success"
    report.exit_code = 3 if failed else 0
    return report


class FakeRun:
    def __init__(self, result: RunReport | Exception) -> None:
        self.result = result
        self.configs: list[Config] = []

    def __call__(self, config: Config) -> RunReport:
        self.configs.append(config)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def as_async(fake: FakeRun) -> Any:
    """``fake`` in the place of ``pipeline.run_async``, which the operator awaits."""

    async def run_async(config: Config, **_: Any) -> RunReport:
        return fake(config)

    return run_async


def operator(module: Any, **kwargs: Any) -> Any:
    """An operator as Airflow hands it to ``execute``: its templates already rendered."""
    rendered = {"out": "/lake", **kwargs}
    return module.HssImageSyncOperator(task_id="sync", **rendered)


def test_the_operator_maps_its_rendered_arguments(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    published = ProjectReport("p9", status="published", records_written=7)
    fake = FakeRun(_report("2026-11-20", published))
    monkeypatch.setattr(pipeline, "run_async", as_async(fake))
    today = _today()
    task = operator(
        module,
        project_ids="p9",
        snapshot_date=today.isoformat(),
        filters={"has_vul": "true", "image_size": "1024", "image_name": "nginx", "host_id": ""},
        max_quarantined="1%",
        rate=3,
    )

    result = task.execute({"ti": FakeTaskInstance()})

    assert result["status"] == "success"
    assert result["records_written"] == 7
    [built] = fake.configs
    assert built.project_ids == ("p9",)
    assert built.snapshot_date == today and built.snapshot_date_origin == "given"
    assert built.filters == Filters(has_vul=True, image_size=1024, image_name="nginx")
    assert built.max_quarantined == QuarantineLimit(count=None, percent=1.0)
    assert built.fetch.rate == 3


def test_a_failed_project_fails_the_task_with_the_connectors_message(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    error = AuthError("the credentials were rejected", project_id="p1", status=401)
    failed = ProjectReport(
        "p1", error=str(error), error_type="AuthError", exit_code=error.exit_code
    )
    monkeypatch.setattr(pipeline, "run_async", as_async(FakeRun(_report("2026-11-20", failed))))
    ti = FakeTaskInstance()

    with pytest.raises(airflow.AirflowFailException) as caught:
        operator(module).execute({"ti": ti})

    assert f"AuthError: {error}" in str(caught.value)
    assert ti.pushed["report"]["status"] == "failed"


def test_a_transient_failure_leaves_the_retry_to_airflow(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    ok = ProjectReport("p1", status="published")
    failed = ProjectReport("p2", error="still HTTP 503", error_type="ServerError", exit_code=3)
    monkeypatch.setattr(pipeline, "run_async", as_async(FakeRun(_report("2026-11-20", ok, failed))))

    with pytest.raises(airflow.AirflowException) as caught:
        operator(module).execute({"ti": FakeTaskInstance()})

    assert not isinstance(caught.value, airflow.AirflowFailException)
    assert "ServerError: still HTTP 503" in str(caught.value)


def test_an_error_before_any_project_becomes_an_airflow_error(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    monkeypatch.setattr(
        pipeline, "run_async", as_async(FakeRun(OutputError("cannot create /lake: read-only")))
    )

    with pytest.raises(airflow.AirflowException, match="OutputError: cannot create"):
        operator(module).execute({"ti": FakeTaskInstance()})


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"filters": {"colour": "red"}}, "argument filters.colour"),
        ({"filters": {"image_size": "big"}}, "argument filters.image_size"),
        ({"filters": {"has_vul": "maybe"}}, "argument filters.has_vul"),
        ({"snapshot_date": "yesterday"}, "argument snapshot_date"),
        ({"snapshot_date": "2026-01-02"}, "or pass argument allow_any_snapshot_date to label"),
        (
            {"snapshot_date": _today(), "allow_any_snapshot_date": "maybe"},
            "allow_any_snapshot_date",
        ),
        ({"max_quarantined": "lots"}, "argument max_quarantined"),
        ({"project_ids": ["ok", "no/slash"]}, "argument project_ids"),
        ({"out": ""}, "argument out"),
    ],
)
def test_a_bad_argument_fails_the_task_without_retries(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch, kwargs: Any, names: str
) -> None:
    airflow.connect()
    monkeypatch.setattr(
        pipeline, "run_async", as_async(FakeRun(AssertionError("run must not be called")))
    )

    with pytest.raises(airflow.AirflowFailException) as caught:
        operator(module, **kwargs).execute({"ti": FakeTaskInstance()})

    assert str(caught.value).startswith("ConfigError: ")
    assert names in str(caught.value)


@pytest.mark.parametrize(
    "value",
    ["2026-11-20", " 2026-11-20 ", "2026-11-20T00:00:00+00:00", date(2026, 11, 20)],
)
def test_snapshot_dates(module: Any, value: Any) -> None:
    sync = importlib.import_module("connector.airflow.operators.sync")
    assert sync._snapshot_date(value) == date(2026, 11, 20)
    assert sync._snapshot_date(datetime(2026, 11, 20, 23, 59)) == date(2026, 11, 20)


def test_the_templated_fields(module: Any) -> None:
    fields = set(module.HssImageSyncOperator.template_fields)
    assert {"out", "snapshot_date", "project_ids", "filters"} <= fields
    assert operator(module).snapshot_date is None  # the date of reading, not {{ ds }}


def test_a_retry_resumes_unless_told_otherwise(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From its second try the operator skips what an earlier try published; an explicit
    argument wins over that; the connection's extra turns it on from the first try."""
    airflow.connect()
    fake = FakeRun(_report(_today().isoformat(), ProjectReport("p1", status="published")))
    monkeypatch.setattr(pipeline, "run_async", as_async(fake))

    for kwargs, tries in [({}, (1, 2, 3)), ({"skip_published": False}, (2,))]:
        for number in tries:
            operator(module, **kwargs).execute({"ti": FakeTaskInstance(try_number=number)})
    airflow.connect(skip_published=True)
    operator(module).execute({"ti": FakeTaskInstance(try_number=1)})
    airflow.connect(skip_published="maybe")
    with pytest.raises(airflow.AirflowFailException, match="extra skip_published: expected true"):
        operator(module).execute({"ti": FakeTaskInstance(try_number=1)})

    assert [c.skip_published for c in fake.configs] == [False, True, True, False, True]


# ------------------------------------------------ enterprise project, the date of reading


def test_every_enterprise_project_unless_the_connection_or_the_task_says(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    assert config(module).filters.enterprise_project_id == "all_granted_eps"

    airflow.connect(enterprise_project_id="0")
    assert config(module).filters.enterprise_project_id == "0"

    fake = FakeRun(_report(_today().isoformat(), ProjectReport("p1", status="published")))
    monkeypatch.setattr(pipeline, "run_async", as_async(fake))
    operator(module, filters={"has_vul": "true"}).execute({"ti": FakeTaskInstance()})
    operator(module, filters={"enterprise_project_id": "ep-7"}).execute({"ti": FakeTaskInstance()})
    connection_ep, task_ep = fake.configs
    assert connection_ep.filters == Filters(enterprise_project_id="0", has_vul=True)
    assert task_ep.filters.enterprise_project_id == "ep-7"

    airflow.connect("hss_bad", enterprise_project_id="")
    with pytest.raises(ConfigError, match="connection 'hss_bad' extra enterprise_project_id"):
        config(module, "hss_bad")


def test_a_run_for_a_day_before_yesterday_is_skipped(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    monkeypatch.setattr(
        pipeline, "run_async", as_async(FakeRun(AssertionError("run must not be called")))
    )
    past = datetime.combine(_today() - timedelta(days=2), datetime.min.time(), UTC)

    with pytest.raises(airflow.AirflowSkipException) as caught:
        operator(module).execute({"ti": FakeTaskInstance(), "logical_date": past})

    assert f"this run stands for {past.date()}" in str(caught.value)
    assert "no history" in str(caught.value) and "allow_any_snapshot_date=True" in str(caught.value)


@pytest.mark.parametrize("days_ago", [0, 1])
def test_runs_for_today_and_yesterday_read_on_the_day_they_run(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch, days_ago: int
) -> None:
    airflow.connect()
    fake = FakeRun(_report(_today().isoformat(), ProjectReport("p1", status="published")))
    monkeypatch.setattr(pipeline, "run_async", as_async(fake))
    logical = datetime.combine(_today() - timedelta(days=days_ago), datetime.min.time(), UTC)

    operator(module).execute({"ti": FakeTaskInstance(), "logical_date": logical})

    [built] = fake.configs
    assert built.snapshot_date_origin == "default"  # the day of reading, not the logical date


def test_a_run_without_a_logical_date_uses_the_day_it_was_due(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    monkeypatch.setattr(
        pipeline, "run_async", as_async(FakeRun(AssertionError("run must not be called")))
    )
    dag_run = types.SimpleNamespace(run_after=datetime(2020, 5, 1, 6, 0, tzinfo=UTC))

    with pytest.raises(airflow.AirflowSkipException, match="stands for 2020-05-01"):
        operator(module).execute(
            {"ti": FakeTaskInstance(), "logical_date": None, "dag_run": dag_run}
        )


def test_an_explicit_past_date_needs_the_opt_in(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    fake = FakeRun(_report("2026-01-02", ProjectReport("p1", status="published")))
    monkeypatch.setattr(pipeline, "run_async", as_async(fake))
    old = datetime(2026, 1, 2, tzinfo=UTC)

    with pytest.raises(
        airflow.AirflowFailException, match="or pass argument allow_any_snapshot_date to label"
    ):
        operator(module, snapshot_date="2026-01-02").execute(
            {"ti": FakeTaskInstance(), "logical_date": old}
        )
    operator(module, snapshot_date="2026-01-02", allow_any_snapshot_date=True).execute(
        {"ti": FakeTaskInstance(), "logical_date": old}
    )

    [built] = fake.configs
    assert (built.snapshot_date, built.snapshot_date_origin) == (date(2026, 1, 2), "opt-in")


def test_a_secret_in_a_failed_projects_error_does_not_reach_the_task_failure(
    module: Any, airflow: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.connect()
    failed = ProjectReport(
        "p1", error=f"error_msg 'bad token {TOKEN}'", error_type="AuthError", exit_code=3
    )
    report = _report(_today().isoformat(), failed)
    report.redactor.add(TOKEN)  # as the pipeline does with the run's secrets
    monkeypatch.setattr(pipeline, "run_async", as_async(FakeRun(report)))
    ti = FakeTaskInstance()

    with pytest.raises(airflow.AirflowFailException) as caught:
        operator(module).execute({"ti": ti})

    assert TOKEN not in str(caught.value) and "bad token ***" in str(caught.value)
    assert TOKEN not in str(ti.pushed["report"])


# ------------------------------------------------------- provider registration, the form


def test_the_provider_info_declares_the_hook_the_operator_and_the_connection_type() -> None:
    from connector.airflow.provider import get_provider_info

    info = get_provider_info()

    assert info["package-name"] == "hss-image-connector"
    assert info["versions"] == [connector.__version__]
    assert info["hooks"][0]["python-modules"] == ["connector.airflow.hooks.hss"]
    assert info["operators"][0]["python-modules"] == ["connector.airflow.operators.sync"]
    [conn_type] = info["connection-types"]
    assert conn_type["connection-type"] == "hss"
    assert conn_type["hook-class-name"] == "connector.airflow.hooks.hss.HssHook"


def test_the_form_has_a_field_for_every_extra_the_hook_reads(module: Any) -> None:
    from connector.airflow.provider import CONN_FIELDS, get_provider_info
    from connector.settings.keys import FILTER_KEYS, TUNING_KEYS

    # the form shows the common extras; every speed setting and filter is an extra too
    assert set(CONN_FIELDS) <= set(module.EXTRA_KEYS)
    assert set(module.EXTRA_KEYS) - set(CONN_FIELDS) <= {*TUNING_KEYS, *FILTER_KEYS}
    assert module.HssHook.conn_type == "hss"
    behaviour = module.HssHook.get_ui_field_behaviour()
    assert set(behaviour) == {"hidden_fields", "relabeling", "placeholders"}
    standard = {"host", "port", "schema", "login", "password"}
    assert behaviour["hidden_fields"] == []  # Host, Port and Schema name the endpoint
    assert set(behaviour["relabeling"]) == standard
    placeholders = set(behaviour["placeholders"]) - standard
    assert placeholders <= set(CONN_FIELDS)  # every placeholder belongs to a field
    # Airflow 3.2+ reads the same from the provider info
    [conn_type] = get_provider_info()["connection-types"]
    declared = conn_type["ui-field-behaviour"]
    assert declared["hidden-fields"] == behaviour["hidden_fields"]
    assert declared["relabeling"] == behaviour["relabeling"]
    assert declared["placeholders"] == behaviour["placeholders"]


def test_extras_saved_by_the_connection_form(module: Any, airflow: StandIn) -> None:
    """The form saves a field left empty as null and, in older versions, prefixes keys."""
    airflow.connect(
        endpoint=None,
        project_ids=None,
        extra__hss__region="cn-north-4",
        extra__hss__project_ids="p7",
        extra__hss__rate=None,
        iam_endpoint=None,
    )
    airflow.connections["hss_default"].extra_dejson["endpoint"] = None

    built = config(module)

    assert built.endpoint == "https://hss.cn-north-4.myhuaweicloud.com"
    assert built.project_ids == ("p7",)


# ------------------------------------------------------------------- test_connection()


def test_test_connection_reports_a_bad_connection_instead_of_raising(
    module: Any, airflow: StandIn
) -> None:
    airflow.connect(auth="aksk", login="AK", password=SECRET_KEY, project_ids=None)

    ok, message = module.HssHook().test_connection()

    assert not ok
    assert message.startswith("ConfigError: ") and "extra project_ids" in message
    assert SECRET_KEY not in message


# ------------------------------------------------- the operator: templates, asset, on_kill


def test_rate_and_concurrency_are_templated(module: Any) -> None:
    fields = set(module.HssImageSyncOperator.template_fields)
    assert {"rate", "concurrency"} <= fields


def test_the_lake_is_the_operators_outlet(module: Any, airflow: StandIn, tmp_path: Any) -> None:
    [asset] = operator(module, out=str(tmp_path / "lake")).outlets
    assert asset.uri == (tmp_path / "lake").resolve().as_uri()
    assert operator(module, out="s3://bucket/hss_images/").outlets[0].uri == (
        "s3://bucket/hss_images"
    )
    # a templated output is only known when the task runs: the lake's Asset by its name
    [named] = operator(module, out="{{ var.value.lake }}").outlets
    assert (named.name, named.uri) == ("hss_images_lake", "hss_images_lake")
    assert operator(module, out="{{ var.value.lake }}", outlets=[]).outlets == []
    chosen = airflow.sdk.Asset(uri="hss_images_lake")
    assert operator(module, outlets=[chosen]).outlets == [chosen]


def test_on_kill_without_a_run_does_nothing(module: Any) -> None:
    operator(module).on_kill()
