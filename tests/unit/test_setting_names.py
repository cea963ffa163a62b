"""The library names a setting by its key; each front end renders the key as its own name.

    the command line          --max-quarantined
    a config file             file F key max_quarantined   (where a value of it is wrong)
    an Airflow connection     connection 'hss_default' extra max_quarantined
    the Airflow operator      argument max_quarantined
    the Python API            max_quarantined

The first test reads the library's source: no message of a module outside the front ends
spells a setting as a flag. The others raise errors (a bad value) under each front end, and
check each says its own name; tests/integration/test_setting_names.py does the same deep in
a run (the quarantine limit, a warning).
"""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from connector import Auth, Config, ConfigError, QuarantineLimitError, Secret
from connector.cli import build_parser, config_from_args, flag, main
from connector.errors import ThrottledError
from connector.settings.keys import KEYS
from connector.settings.names import mentioned, name, naming, render, setting
from tests.integration.helpers import TOKEN
from tests.unit.test_airflow_hook import (  # noqa: F401
    FakeConnection,
    FakeTaskInstance,
    StandIn,
    airflow,
    module,
)

CONNECTOR = Path(__file__).resolve().parents[2] / "connector"
FRONT_ENDS = ("cli.py", "airflow", "simulator")
"""Where a flag may be spelled: the command line's own module, the Airflow front end (it
names the CLI only to compare), and the simulator, which has a command line of its own."""
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def _library_modules() -> list[Path]:
    return [
        path
        for path in sorted(CONNECTOR.rglob("*.py"))
        if path.relative_to(CONNECTOR).parts[0] not in FRONT_ENDS
    ]


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the nodes that are docstrings (a module's, class's or function's, and the
    string under an assignment, as attribute docs are written here)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for index, statement in enumerate(body):
            first = index == 0 and isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            )
            after_assignment = index > 0 and isinstance(body[index - 1], ast.Assign | ast.AnnAssign)
            if (
                (first or after_assignment)
                and isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                found.add(id(statement.value))
    return found


def _flags_in_messages(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    said = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            said += [f"{path.name}:{node.lineno}: {f}" for f in FLAG.findall(node.value)]
    return said


def test_the_guard_finds_a_flag_in_a_message(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""A docstring may say --rate."""\n'
        'def f(x):\n    """So may --this."""\n    raise ValueError(f"lower --rate {x}")\n'
    )
    assert _flags_in_messages(planted) == ["planted.py:4: --rate"]


def test_no_library_module_spells_a_setting_as_a_flag() -> None:
    modules = _library_modules()
    assert len(modules) > 30  # the walk found the package
    found = [line for path in modules for line in _flags_in_messages(path)]
    assert found == [], "\n".join(found)


def test_every_setting_the_library_names_is_a_key() -> None:
    """``setting("...")``, ``name("...")`` and ``ConfigError(..., setting="...")`` name keys
    of ``KEYS``, each of which the command line has a flag for."""
    called = re.compile(
        r"""\b(?:setting|name|name_and_key)\(\s*["']([a-z_]+)["']\s*\)"""
        r"""|\b(?:setting|key)=["']([a-z_]+)["']\s*[,)]"""
    )
    found = {
        first or second
        for path in _library_modules()
        if "from connector.settings.names import" in (text := path.read_text())
        for first, second in called.findall(text)
    }
    assert {"max_quarantined", "out", "total_num_tolerance", "project_ids"} <= found
    assert found <= set(KEYS), sorted(found - set(KEYS))
    parsed = build_parser().parse_args(["sync"])
    assert [key for key in sorted(found) if not hasattr(parsed, key)] == []


# ------------------------------------------------------------------ the names themselves


def test_a_mention_renders_by_the_front_end_in_use_else_by_key() -> None:
    text = f"more than {setting('max_quarantined')} 5, {setting('project_ids')}"
    assert mentioned(text) == ("max_quarantined", "project_ids")
    assert render(text) == "more than max_quarantined 5, project_ids"
    with naming(flag):
        assert render(text) == "more than --max-quarantined 5, --project-id"
        assert name("out") == "--out"
        with naming(lambda key: f"argument {key}"):  # the outermost front end holds
            assert name("out") == "--out"
    assert name("out") == "out"


def test_an_error_keeps_its_settings_and_the_names_it_was_raised_under() -> None:
    with naming(flag):
        error = QuarantineLimitError(f"more than {setting('max_quarantined')} 5")
        config_error = ConfigError("give an output folder", setting="out")
    assert error.settings == ("max_quarantined",)
    assert str(error) == "more than --max-quarantined 5"  # shown after the front end returned
    assert (config_error.setting, config_error.where) == ("out", "--out")
    plain = QuarantineLimitError(f"more than {setting('max_quarantined')} 5")
    assert str(plain) == "more than max_quarantined 5"
    with naming(flag):  # raised in a worker thread without names: shown by the front end
        assert str(plain) == "more than --max-quarantined 5"


def test_a_pickled_error_reads_as_it_did_where_it_was_raised() -> None:
    with naming(lambda key: f"argument {key}"):
        errors = [
            QuarantineLimitError(f"more than {setting('max_quarantined')} 5"),
            ConfigError(f"pass {setting('allow_any_snapshot_date')}", setting="snapshot_date"),
            ThrottledError(f"lower {setting('rate')}", project_id="p1", status=429, attempts=3),
        ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.settings == error.settings
        with naming(flag):  # another process, another front end: the text stays
            assert str(copy) == str(error)
    assert str(errors[1]) == ("argument snapshot_date: pass argument allow_any_snapshot_date")
    assert errors[1].setting == pickle.loads(pickle.dumps(errors[1])).setting == "snapshot_date"
    assert str(errors[2]) == "lower argument rate (project p1, HTTP 429, after 3 attempts)"


# ---------------------------------------------------------- a bad value, in every front end


def _built(**changes: Any) -> Config:
    fields: dict[str, Any] = {
        "projects": ("p1",),
        "endpoint": "https://hss.example.test",
        "out": "/lake",
        "auth": Auth(token=Secret(TOKEN)),
        **changes,
    }
    return Config(**fields)


def test_the_python_api_names_a_setting_by_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        _built(endpoint="ftp://hss.example.test")
    assert caught.value.setting == "endpoint"
    assert str(caught.value).startswith("endpoint: expected an http(s) URL")
    with pytest.raises(ConfigError) as caught:
        _built(endpoint="http://hss.example.test")
    assert "unless allow_insecure_http is true (allow_insecure_http, or the key" in str(
        caught.value
    )


def test_the_command_line_names_a_setting_by_its_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HSS_AUTH_TOKEN", TOKEN)
    argv = ["sync", "--out", "/lake", "--project-id", "p1", "--endpoint", "http://hss.example.test"]
    assert main(argv) == 2
    said = capsys.readouterr().err
    assert said.startswith("ConfigError: flag --endpoint: plain http:// sends credentials")
    assert "unless allow_insecure_http is true (--allow-insecure-http, or the key" in said


def test_a_config_file_names_a_bad_value_by_its_key(tmp_path: Path) -> None:
    path = tmp_path / "hss.toml"
    path.write_text('out = "/lake"\nendpoint = "http://hss.example.test"\nproject_ids = "p1"\n')
    with pytest.raises(ConfigError) as caught:
        config_from_args(
            build_parser().parse_args(["sync", "--config", str(path)]), {"HSS_AUTH_TOKEN": TOKEN}
        )
    assert caught.value.where == f"file {path} key endpoint"
    assert caught.value.setting == "endpoint"
    # the sentence is the command line's: its file is one of its sources
    assert "(--allow-insecure-http, or the key" in str(caught.value)


def test_a_connection_names_a_setting_by_its_extra(
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
) -> None:
    airflow.connections["hss_x"] = FakeConnection(
        "hss_x", password=TOKEN, extra_dejson={"endpoint": "http://hss.example.test"}
    )
    with pytest.raises(ConfigError) as caught:
        module.HssHook("hss_x").get_config(out="/lake", projects="p1")
    assert caught.value.where == "connection 'hss_x' extra endpoint"
    assert (
        "unless allow_insecure_http is true (connection 'hss_x' extra allow_insecure_http, or"
        in str(caught.value)
    )


def test_the_operator_names_a_setting_by_its_argument(
    module: Any,  # noqa: F811
    airflow: StandIn,  # noqa: F811
) -> None:
    airflow.connections["hss_x"] = FakeConnection(
        "hss_x", password=TOKEN, extra_dejson={"endpoint": "https://hss.example.test"}
    )
    task = module.HssImageSyncOperator(
        task_id="t", out="/lake", project_ids="p1", hss_conn_id="hss_x", max_quarantined="lots"
    )
    with pytest.raises(airflow.AirflowFailException) as caught:
        task.execute({"ti": None, "logical_date": None})
    assert str(caught.value).startswith("ConfigError: argument max_quarantined: expected a count")
    assert task.setting_name("request_timeout") == "connection 'hss_x' extra request_timeout"
    assert task.setting_name("has_vul") == "argument filters.has_vul"
