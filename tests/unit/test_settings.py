"""One input layer: the same settings as CLI flags, TOML keys and Airflow connection extras.

Each case is fed to the three real gatherers (``config_from_args`` over a parsed command
line, the same with ``--config FILE``, ``HssHook.get_config`` over a stand-in connection) and
must give equal ``Config``s; a bad value must give the same message from every source, with
only the source's own name (``flag --rate``, ``file F key rate``, ``connection 'hss_default'
extra rate``) in front.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector import Config, ConfigError, FetchSettings, Filters, QuarantineLimit, RetryPolicy
from connector.cli import build_parser, config_from_args, flag
from connector.settings.config import Auth, Secret, Target, TotalTolerance
from connector.settings.keys import FILTER_KEYS, KEYS, TUNING_KEYS

from .test_airflow_hook import FakeConnection, StandIn, airflow, module  # noqa: F401

TOKEN = "tok-" + "5e77d1c3" * 6
ENV = {"HSS_AUTH_TOKEN": TOKEN}
EP = "https://hss.example.test"
OUT = "/lake"
STORE_TRUE = {"allow_insecure_http", "allow_any_snapshot_date", "all_projects"}
BASE: dict[str, Any] = {"endpoint": EP, "project_ids": "p1"}


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


# ------------------------------------------------------------------ the three sources


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


class Sources:
    """Feeds one mapping of settings through each gatherer; names each key as it does."""

    def __init__(self, tmp_path: Path, stand_in: StandIn, hook_module: Any) -> None:
        self.path = tmp_path / "hss.toml"
        self.stand_in = stand_in
        self.module = hook_module

    def flags(self, settings: dict[str, Any]) -> Config:
        argv = ["sync", "--out", OUT]
        for key, value in settings.items():
            flag = "--project-id" if key == "project_ids" else "--" + key.replace("_", "-")
            if key in STORE_TRUE:
                argv += [flag] if _text(value).lower() == "true" else []
                continue
            for item in value if isinstance(value, list) else [value]:
                argv += [flag, _text(item)]
        return config_from_args(build_parser().parse_args(argv), ENV)

    def file(self, settings: dict[str, Any], *, table: bool = False, tail: str = "") -> Config:
        top = {k: v for k, v in settings.items() if not (table and k in FILTER_KEYS)}
        lines = [f"out = {_toml(OUT)}", *(f"{k} = {_toml(v)}" for k, v in top.items())]
        if table:
            lines.append("[filters]")
            lines += [f"{k} = {_toml(v)}" for k, v in settings.items() if k in FILTER_KEYS]
        self.path.write_text("\n".join(lines) + "\n" + tail)
        return config_from_args(
            build_parser().parse_args(["sync", "--config", str(self.path)]), ENV
        )

    def file_table(self, settings: dict[str, Any]) -> Config:
        return self.file(settings, table=True)

    def connection(self, settings: dict[str, Any]) -> Config:
        extras = {k: v for k, v in settings.items() if k in self.module.EXTRA_KEYS}
        arguments = {k: v for k, v in settings.items() if k not in extras}
        self.stand_in.connections["hss_default"] = FakeConnection(
            "hss_default", password=TOKEN, extra_dejson=extras
        )
        config: Config = self.module.HssHook().get_config(out=OUT, progress="auto", **arguments)
        return config

    def label(self, source: str, key: str) -> str:
        if source == "flags":
            return "flag " + (
                "--project-id" if key == "project_ids" else "--" + key.replace("_", "-")
            )
        if source.startswith("file"):
            nested = source == "file_table" and key in FILTER_KEYS
            return f"file {self.path} key {'filters.' if nested else ''}{key}"
        if key in self.module.EXTRA_KEYS:
            return f"connection 'hss_default' extra {key}"
        return f"argument {key}"

    def run(self, source: str, settings: dict[str, Any]) -> Config:
        build: Callable[[dict[str, Any]], Config] = getattr(self, source)
        return build(settings)


@pytest.fixture
def sources(tmp_path: Path, airflow: StandIn, module: Any) -> Sources:  # noqa: F811
    return Sources(tmp_path, airflow, module)


def _same(config: Config) -> Config:
    """What may differ between equal runs: the run id, and the Airflow progress default."""
    return replace(config, run_id="r", progress="auto")


def _sources(settings: dict[str, Any]) -> list[str]:
    names = ["flags", "file", "connection"]
    return names + (["file_table"] if set(settings) & set(FILTER_KEYS) else [])


# ------------------------------------------------------------------------- the table

TUNING_TEXT = {
    "page_size": "50",
    "rate": "2.5",
    "burst": "3",
    "concurrency": "4",
    "parallel_projects": "2",
    "memory_limit": "1.5GiB",
    "max_attempts": "5",
    "max_retry_time": "30",
    "connect_timeout": "5",
    "read_timeout": "20",
    "request_timeout": "40",
    "max_offset": "10000",
    "max_repair_rounds": "3",
    "max_quarantined": "1%",
    "total_num_tolerance": "0.5%",
}
TUNING_TYPED = {
    **{
        k: json.loads(v)
        for k, v in TUNING_TEXT.items()
        if k not in ("max_quarantined", "memory_limit", "total_num_tolerance")
    },
    "max_quarantined": "1%",
    "total_num_tolerance": "0.5%",
    "memory_limit": 1536 * 2**20,
}
TUNED = FetchSettings(
    page_size=50,
    rate=2.5,
    burst=3,
    concurrency=4,
    connect_timeout_s=5,
    read_timeout_s=20,
    request_timeout_s=40,
    max_offset=10_000,
    max_repair_rounds=3,
    total_tolerance=TotalTolerance(percent=0.5),
    retry=RetryPolicy(max_attempts=5, max_elapsed_s=30),
)
FILTERS = {
    "scan_status": "success",
    "image_name": "nginx",
    "image_version": "1.25",
    "image_size": "1024",
    "start_latest_update_time": "1",
    "end_latest_update_time": "2",
    "enterprise_project_id": "0",
}


@dataclass(frozen=True)
class Good:
    name: str
    settings: dict[str, Any]
    check: Callable[[Config], bool] = field(default=lambda config: True)


GOOD = [
    Good(
        "every tuning key as text",
        TUNING_TEXT,
        lambda c: (
            (c.fetch, c.parallel_projects, c.memory_limit, c.max_quarantined)
            == (TUNED, 2, 1536 * 2**20, QuarantineLimit(count=None, percent=1.0))
        ),
    ),
    Good(
        "every tuning key as a number",
        TUNING_TYPED,
        lambda c: (c.fetch, c.parallel_projects, c.memory_limit) == (TUNED, 2, 1536 * 2**20),
    ),
    Good(
        "projects at once from memory alone, a budget in decimal units",
        {"parallel_projects": "auto", "memory_limit": "1.5GB"},
        lambda c: (c.parallel_projects, c.memory_limit) == (None, 1_500_000_000),
    ),
    Good(
        "a total_num tolerance in records, as a number",
        {"total_num_tolerance": 10},
        lambda c: c.fetch.total_tolerance == TotalTolerance(records=10),
    ),
    Good(
        "a total_num tolerance in percent, with a space",
        {"total_num_tolerance": "2 %"},
        lambda c: c.fetch.total_tolerance == TotalTolerance(percent=2.0),
    ),
    Good(
        "no total_num tolerance given: exact",
        {},
        lambda c: c.fetch.total_tolerance == TotalTolerance(),
    ),
    Good(
        "no memory limit given: derived when the run starts",
        {},
        lambda c: (c.parallel_projects, c.memory_limit) == (None, None),
    ),
    Good(
        "a region instead of an endpoint, a list of projects",
        {"endpoint": None, "region": "cn-north-4", "project_ids": ["p1", "p2"]},
        lambda c: (
            c.targets
            == (
                Target("p1", "https://hss.cn-north-4.myhuaweicloud.com"),
                Target("p2", "https://hss.cn-north-4.myhuaweicloud.com"),
            )
        ),
    ),
    Good(
        "projects as one comma-separated text",
        {"project_ids": "p1, p2,p3"},
        lambda c: c.project_ids == ("p1", "p2", "p3"),
    ),
    Good(
        "booleans as text",
        {
            "endpoint": "http://hss.internal.test:8080",
            "allow_insecure_http": "true",
            "has_vul": "false",
            "has_container": "TRUE",
        },
        lambda c: c.allow_insecure_http and c.filters.has_vul is False and c.filters.has_container,
    ),
    Good("booleans as booleans", {"has_vul": True}, lambda c: c.filters.has_vul is True),
    Good(
        "today as the snapshot date",
        {"snapshot_date": "today"},  # replaced by the date when the test runs
        lambda c: c.snapshot_date.isoformat() == _today() and c.snapshot_date_origin == "given",
    ),
    Good(
        "another date, opted in",
        {"snapshot_date": "2020-01-02", "allow_any_snapshot_date": "true"},
        lambda c: c.snapshot_date_origin == "opt-in",
    ),
    Good(
        "filters",
        FILTERS,
        lambda c: (
            c.filters
            == Filters(
                scan_status="success",
                image_name="nginx",
                image_version="1.25",
                image_size=1024,
                start_latest_update_time=1,
                end_latest_update_time=2,
                enterprise_project_id="0",
            )
        ),
    ),
    Good(
        "all projects",
        {"project_ids": "all", "endpoint": None, "region": "cn-north-4"},
        lambda c: c.all_projects and c.projects == () and c.endpoint is not None,
    ),
]


def _filled(settings: dict[str, Any]) -> dict[str, Any]:
    merged = {**BASE, **settings}
    if merged.get("snapshot_date") == "today":
        merged["snapshot_date"] = _today()
    return {k: v for k, v in merged.items() if v is not None}


@pytest.mark.parametrize("case", GOOD, ids=lambda case: case.name)
def test_the_same_settings_make_the_same_config_from_every_source(
    sources: Sources, case: Good
) -> None:
    settings = _filled(case.settings)
    configs = {name: _same(sources.run(name, settings)) for name in _sources(settings)}
    first = configs["flags"]
    assert case.check(first), first
    for name, config in configs.items():
        assert config == first, name
    assert first.auth == Auth(token=Secret(TOKEN))


@dataclass(frozen=True)
class Bad:
    name: str
    settings: dict[str, Any]
    key: str
    """Whose source the error must name."""
    words: str


BAD = [
    Bad("a number that is not", {"rate": "fast"}, "rate", "expected a number, got 'fast'"),
    Bad("a negative rate", {"rate": "-1"}, "rate", "must be a number >= 0"),
    Bad("half a request", {"concurrency": "2.5"}, "concurrency", "expected an integer"),
    Bad("not a finite time", {"read_timeout": "nan"}, "read_timeout", "expected a finite number"),
    Bad("a page too small", {"page_size": "5"}, "page_size", "between 10 and 200"),
    Bad("no attempt at all", {"max_attempts": "0"}, "max_attempts", "at least 1"),
    Bad("a limit of lots", {"max_quarantined": "lots"}, "max_quarantined", "like 1%"),
    Bad(
        "a negative tolerance",
        {"total_num_tolerance": "-1"},
        "total_num_tolerance",
        "expected a number of records like 10 or a percentage of total_num like 0.5%",
    ),
    Bad("a tolerance of lots", {"total_num_tolerance": "lots"}, "total_num_tolerance", "'lots'"),
    Bad("a NaN tolerance", {"total_num_tolerance": "nan%"}, "total_num_tolerance", "'nan%'"),
    Bad("a size that is not", {"memory_limit": "lots"}, "memory_limit", "a size like 512MiB"),
    Bad("a unit that is not", {"memory_limit": "2 GiBs"}, "memory_limit", "a size like 512MiB"),
    Bad("a budget too small", {"memory_limit": "512KiB"}, "memory_limit", "at least 1MiB"),
    Bad("projects by the dozen", {"parallel_projects": "many"}, "parallel_projects", "auto or"),
    Bad("no project at once", {"parallel_projects": "0"}, "parallel_projects", "auto or between"),
    Bad("a boolean that is not", {"has_vul": "maybe"}, "has_vul", "expected true or false"),
    Bad("an unknown status", {"scan_status": "waiting"}, "scan_status", "waiting_for_scan"),
    Bad("a size that is not", {"image_size": "big"}, "image_size", "expected an integer"),
    Bad("a version alone", {"image_version": "1.0"}, "image_version", "without <image_name>"),
    Bad("an unknown region", {"endpoint": None, "region": "mars-1"}, "region", "unknown region"),
    Bad("not a URL", {"endpoint": "ftp://hss.example.test"}, "endpoint", "expected an http(s)"),
    Bad(
        "plain http elsewhere",
        {"endpoint": "http://hss.internal.test"},
        "endpoint",
        "allow_insecure_http is true",
    ),
    Bad(
        "a region and an endpoint",
        {"region": "cn-north-4"},
        "endpoint",
        "give endpoint or region, not both (also given: <region>)",
    ),
    Bad("no endpoint", {"endpoint": None}, "project_ids", "has no endpoint"),
    Bad("a path as a project", {"project_ids": "ok,../etc"}, "project_ids", "is not a project ID"),
    Bad("no project at all", {"project_ids": " , "}, "project_ids", "no project id given"),
    Bad("not a date", {"snapshot_date": "28/11/2026"}, "snapshot_date", "like 2026-11-28"),
    Bad("a day long gone", {"snapshot_date": "2001-01-01"}, "snapshot_date", "not the date"),
    Bad(
        "all projects without an endpoint",
        {"project_ids": "all", "endpoint": None},
        "project_ids",
        "needs an endpoint or a region",
    ),
]


def _placeholders(sources: Sources, source: str, message: str) -> str:
    """The message with every name of this source's keys replaced by ``<key>``: where the
    value came from, and how its front end names a setting in a sentence (the flag, for the
    command line and its config file)."""
    keys = [*KEYS, "id", "endpoint"]
    names = [(sources.label(source, k), k) for k in keys]
    if source != "connection":
        names += [(flag(k), k) for k in KEYS]
    for label, key in sorted(names, key=lambda pair: -len(pair[0])):
        message = message.replace(label, f"<{key}>")
    return message


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.name)
def test_a_bad_value_gets_the_same_message_from_every_source(sources: Sources, case: Bad) -> None:
    settings = _filled(case.settings)
    messages: dict[str, str] = {}
    for name in _sources(settings):
        with pytest.raises(ConfigError) as caught:
            sources.run(name, settings)
        assert caught.value.where == sources.label(name, case.key), (name, str(caught.value))
        messages[name] = _placeholders(sources, name, str(caught.value))
        assert TOKEN not in str(caught.value)
    first = messages["flags"]
    assert first.startswith(f"<{case.key}>: ") and case.words in first, first
    assert all(message == first for message in messages.values()), messages


# ------------------------------------------------------- what only the file can say


PER_PROJECT = """
[[projects]]
id = "p1"

[[projects]]
id = "p2"
enterprise_project_id = "0"
scan_status = "success"

[[projects]]
id = "p3"
region = "cn-north-4"
has_vul = "false"
"""


@pytest.mark.parametrize("table", [False, True], ids=["top level", "[filters]"])
def test_a_project_of_the_file_adds_its_own_filters_to_the_runs(
    sources: Sources, table: bool
) -> None:
    config = sources.file({"endpoint": EP, "has_vul": True}, table=table, tail=PER_PROJECT)

    run = Filters(has_vul=True)
    assert config.filters == run
    assert config.targets == (
        Target("p1", EP),
        Target("p2", EP, Filters(enterprise_project_id="0", scan_status="success", has_vul=True)),
        Target("p3", "https://hss.cn-north-4.myhuaweicloud.com", Filters(has_vul=False)),
    )
    assert config.filters_of(config.targets[0]) == run
    assert config == Config(  # the library's own form of the same run
        projects=(
            "p1",
            Target(
                "p2", EP, Filters(enterprise_project_id="0", scan_status="success", has_vul=True)
            ),
            Target("p3", "https://hss.cn-north-4.myhuaweicloud.com", Filters(has_vul=False)),
        ),
        endpoint=EP,
        out=OUT,
        auth=Auth(token=Secret(TOKEN)),
        filters=run,
        run_id=config.run_id,
    )


@pytest.mark.parametrize(
    ("settings", "tail", "where", "words"),
    [
        ({"has_vul": True}, "[filters]\nhas_vul = false\n", "filters.has_vul", "given twice"),
        ({}, '[[projects]]\nid = "p2"\nendpoint = "ftp://x"\n', "projects[1].endpoint", "http(s)"),
        (
            {},
            '[[projects]]\nid = "p2"\nhas_vul = "maybe"\n',
            "projects[1].has_vul",
            "true or false",
        ),
        ({}, '[[projects]]\nid = "p2"\nimage_version = "1"\n', "projects[1]", "--image-name"),
        ({}, '[[projects]]\nid = "p2"\ncolour = "red"\n', "projects[1]", "unknown key 'colour'"),
        ({}, '[[projects]]\nid = "a/b"\n', "projects[1].id", "is not a project ID"),
        (
            {"project_ids": "p1"},
            '[[projects]]\nid = "p2"\n',
            "project_ids",
            "give project_ids or projects, not both",
        ),
    ],
)
def test_what_is_wrong_in_the_file_is_named_by_its_key(
    sources: Sources, settings: dict[str, Any], tail: str, where: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        sources.file({"endpoint": EP, **settings}, tail=tail)
    assert caught.value.where == f"file {sources.path} key {where}", str(caught.value)
    assert words in str(caught.value)


# ----------------------------------------------------------- precedence, all projects


def test_flags_win_over_the_file_which_wins_over_the_environment(sources: Sources) -> None:
    sources.path.write_text(f'out = "{OUT}"\nendpoint = "{EP}"\nproject_ids = ["p1"]\nrate = 3\n')
    env = {**ENV, "HSS_REGION": "cn-north-4"}

    def sync(*flags: str) -> Config:
        args = build_parser().parse_args(["sync", "--config", str(sources.path), *flags])
        return config_from_args(args, env)

    assert (sync().endpoint, sync().fetch.rate) == (EP, 3)
    flagged = sync("--region", "ap-southeast-3", "--rate", "4", "--project-id", "p9")
    assert flagged.endpoint == "https://hss.ap-southeast-3.myhuaweicloud.com"
    assert (flagged.fetch.rate, flagged.project_ids) == (4, ("p9",))
    sources.path.write_text(f'out = "{OUT}"\nproject_ids = "p1"\n')
    assert sync().endpoint == "https://hss.cn-north-4.myhuaweicloud.com"


def test_all_projects_conflicts_with_project_ids_wherever_they_come_from(
    sources: Sources,
) -> None:
    assert _same(sources.flags({"all_projects": True, "region": "cn-north-4"})) == _same(
        sources.flags({"project_ids": "all", "region": "cn-north-4"})
    )
    with pytest.raises(ConfigError) as caught:
        sources.flags({"all_projects": True, "project_ids": "p1", "endpoint": EP})
    assert str(caught.value) == (
        "flag --all-projects: reads every project the credentials can access: give no "
        "project ids too (also given: flag --project-id)"
    )
    sources.file({"endpoint": EP}, tail='[[projects]]\nid = "p2"\n')
    with pytest.raises(ConfigError, match=r"also given: file .* key projects\)"):
        config_from_args(
            build_parser().parse_args(["sync", "--config", str(sources.path), "--all-projects"]),
            ENV,
        )
    with pytest.raises(ConfigError, match=r"^flag --all-projects: needs an endpoint"):
        sources.flags({"all_projects": True})


def test_an_operator_argument_wins_over_the_connections_all(
    sources: Sources,
    module: Any,  # noqa: F811
) -> None:
    assert sources.connection({"endpoint": EP, "project_ids": "all", **DISCOVERY}).all_projects
    chosen = sources.connection(
        {"endpoint": EP, "project_ids": "all", "projects": ["p4"], **DISCOVERY}
    )
    assert (chosen.all_projects, chosen.project_ids) == (False, ("p4",))


DISCOVERY = {"discovery_region": "cn-north-4", "iam_endpoint": "https://iam.example.test"}
"""What listing the projects of an endpoint whose host names no region needs."""


def test_the_library_accepts_an_empty_project_list_only_for_all_projects() -> None:
    auth = Auth(token=Secret(TOKEN))
    public = "https://hss.cn-north-4.myhuaweicloud.com"
    config = Config(projects=(), endpoint=public, out=OUT, auth=auth, all_projects=True)
    assert (config.targets, config.project_ids) == ((), ())
    with pytest.raises(ConfigError, match=r"^project_ids: give at least one project id"):
        Config(projects=(), endpoint=EP, out=OUT, auth=auth)
    with pytest.raises(ConfigError, match=r"^all_projects: give project ids or all_projects"):
        Config(projects=("p1",), endpoint=public, out=OUT, auth=auth, all_projects=True)
    with pytest.raises(
        ConfigError, match=r"^all_projects: the projects are listed for one endpoint's region"
    ):
        Config(projects=(), endpoint=None, out=OUT, auth=auth, all_projects=True)


def test_a_bare_project_follows_the_runs_endpoint_and_filters() -> None:
    auth = Auth(token=Secret(TOKEN))
    own = Target("p2", "https://hss.other.test", Filters(enterprise_project_id="0"))
    config = Config(projects=("p1", own), endpoint=EP, out=OUT, auth=auth)
    moved = replace(config, endpoint="https://hss.moved.test", filters=Filters(has_vul=True))
    assert moved.targets == (Target("p1", "https://hss.moved.test"), own)
    assert [moved.filters_of(t) for t in moved.targets] == [Filters(has_vul=True), own.filters]


# ------------------------------------------------------------------ one parser per key


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_an_integer_reads_the_same_as_text_and_as_a_number(number: int) -> None:
    for key in ("page_size", "max_offset", "image_size"):
        try:
            native = KEYS[key](number, "x")
        except ConfigError as error:
            with pytest.raises(ConfigError) as caught:
                KEYS[key](str(number), "x")
            assert str(caught.value) == str(error)
        else:
            assert KEYS[key](str(number), "x") == KEYS[key](f" {number} ", "x") == native


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_number_reads_the_same_as_text_and_as_a_number(number: float) -> None:
    for key in ("rate", "read_timeout"):
        try:
            native = KEYS[key](number, "x")
        except ConfigError as error:
            assert "finite" in str(error)
            with pytest.raises(ConfigError, match="finite"):
                KEYS[key](repr(number), "x")
        else:
            assert KEYS[key](repr(number), "x") == native


@given(st.booleans(), st.sampled_from([str.lower, str.upper, str.title]))
def test_a_boolean_reads_the_same_as_text(value: bool, case: Callable[[str], str]) -> None:
    for key in ("has_vul", "allow_insecure_http", "all_projects"):
        assert KEYS[key](case(_text(value)), "x") is KEYS[key](value, "x") is value


def test_every_tuning_key_is_a_flag_a_file_key_and_a_connection_extra(module: Any) -> None:  # noqa: F811
    from connector.cli import TUNING
    from connector.settings.file import FILE_KEYS

    assert {key for key, *_ in TUNING} == set(TUNING_KEYS)
    assert set(TUNING_KEYS) <= set(FILE_KEYS) & set(module.EXTRA_KEYS)
    assert set(FILTER_KEYS) <= set(FILE_KEYS) & set(module.EXTRA_KEYS)
