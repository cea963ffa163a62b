"""The manual documents every flag, setting, environment variable, exit code, module and
report key the code has; the README stays a front page; the manual builds strictly.

The manual is ``docs/`` (mkdocs); parts of it are generated at build time by
``docs/hooks/manual.py``, which these tests load to check what it generates.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from connector.cli import ENVIRONMENT, EXIT_CODES, build_parser
from connector.settings.keys import CONNECTION_KEYS, FILTER_KEYS, KEYS, TUNING_KEYS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = (
    "index",
    "getting-started",
    "configuration",
    "reference",
    "cli",
    "output",
    "changes",
    "guarantees",
    "airflow",
    "simulator",
    "performance",
    "architecture",
    "development",
    "api",
    "changelog",
)


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("manual_hook", DOCS / "hooks" / "manual.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _hook()


def page(name: str) -> str:
    """A page of the manual as the build sees it: its generated parts filled in."""
    path = DOCS / f"{name}.md"
    return str(HOOK.fill(path.read_text(encoding="utf-8"), path.name))


def section(text: str, heading: str) -> str:
    """From ``heading`` to the next heading of the same or a higher level."""
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    after = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading) :], re.MULTILINE)
    return text[start : start + len(heading) + after.start()] if after else text[start:]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# ------------------------------------------------------------------- the reference


@pytest.mark.parametrize("command", ["sync", "check", "simulate", "demo"])
def test_every_flag_is_documented(command: str) -> None:
    reference = page("reference")
    cli = section(reference, "## Commands and flags")
    documented = section(cli, f"### `hss-images {command}`")
    if "It takes every flag of [`hss-images sync`]" in documented:
        assert [a.option_strings for a in _subcommands()[command]._actions] == [
            a.option_strings for a in _subcommands()["sync"]._actions
        ]
        documented = section(cli, "### `hss-images sync`")
    for action in _subcommands()[command]._actions:
        for flag in action.option_strings:
            if flag in ("-h", "--help"):
                continue
            assert re.search(rf"^\| `(.*, )?{re.escape(flag)}[ `,]", documented, re.MULTILINE), (
                f"{command} {flag} is not documented"
            )


def test_every_flag_has_its_help_in_the_reference() -> None:
    documented = section(page("reference"), "## Commands and flags")
    for action in _subcommands()["sync"]._actions:
        if action.option_strings and action.help and "-h" not in action.option_strings:
            first_words = " ".join(action.help.split()[:4]).replace("%%", "%")
            assert HOOK._inline(first_words) in documented, action.option_strings


def test_every_top_level_flag_is_documented() -> None:
    section_ = section(page("reference"), "### `hss-images`")
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`hss-images {flag}`" in section_, f"{flag} is not documented"


def test_every_setting_key_is_in_the_reference() -> None:
    table = section(page("reference"), "## Settings")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| (\w+) \|", table, re.M)}
    assert list(rows) == list(KEYS)
    for key in KEYS:
        kind = rows[key]
        assert kind == (
            "filter"
            if key in FILTER_KEYS
            else "tuning"
            if key in TUNING_KEYS
            else "connection"
            if key in CONNECTION_KEYS
            else "run"
        ), key


def test_a_setting_without_a_flag_or_a_description_fails_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(HOOK.NOT_FLAGS, "run_id")
    with pytest.raises(RuntimeError, match="'run_id' has no flag"):
        HOOK.settings_table()


def test_every_environment_variable_is_documented() -> None:
    from connector.simulator.cli import ENVIRONMENT as SIMULATOR_ENVIRONMENT

    table = section(page("reference"), "## Environment variables")
    for name in [*ENVIRONMENT, *SIMULATOR_ENVIRONMENT]:
        assert f"| `{name}` |" in table, name
    simulator = page("simulator")
    for name in SIMULATOR_ENVIRONMENT:
        assert f"`{name}`" in simulator, name


def test_every_exit_code_is_documented() -> None:
    table = section(page("cli"), "## Exit codes")
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", table, re.MULTILINE), code


# ------------------------------------------------------------------ the tree map


def test_the_tree_map_lists_every_module_under_connector() -> None:
    tree = section(page("architecture"), "## Map of the package")
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "connector").rglob("*.py"))
    assert modules, "no module found"
    for module in modules:
        listed = module.removesuffix("__init__.py") if module.endswith("/__init__.py") else module
        assert f"| `{listed}` |" in tree, f"{listed} is not on the map"


def test_the_tree_map_says_what_each_module_owns() -> None:
    for path, summary in HOOK.package_modules():
        module = ROOT / path / "__init__.py" if path.endswith("/") else ROOT / path
        docstring = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8")))
        assert docstring, path
        assert summary.startswith(" ".join(docstring.splitlines()[0].split())), path


def test_a_generated_part_no_one_knows_fails() -> None:
    with pytest.raises(ValueError, match="no generated part 'tree'"):
        HOOK.fill("<!-- generated: tree -->\n", "page.md")


# ------------------------------------------------------------------- the pages


def test_the_readme_is_a_front_page() -> None:
    assert len(README.splitlines()) <= 300
    for name in PAGES:
        if name != "index":
            assert f"(docs/{name}.md" in README, f"the README does not link to {name}.md"


def test_quick_start_is_two_commands() -> None:
    for text in (README, page("getting-started")):
        block = text[text.index("## Quick start") :]
        commands = re.search(r"```sh\n(.*?)```", block, re.DOTALL)
        assert commands is not None
        lines = [line for line in commands.group(1).splitlines() if line.strip()]
        assert [line.split("#")[0].strip() for line in lines] == ["./dev demo", "./dev test"]


LAKE = "/data/lake/hss_images"
READS = (
    # (what the manual shows, with LAKE for the lake, as the readers' tests spell it)
    (
        "read_parquet('OUT/**/*.parquet', hive_partitioning = true, "
        "hive_types = {'project_id': VARCHAR, 'snapshot_date': DATE})",
        None,  # the test holds this string as DUCKDB_READ
    ),
    ('partitions = {"project_id": pl.String, "snapshot_date": pl.Date}', None),
    (
        "pl.scan_parquet(OUT, hive_partitioning=True, hive_schema=partitions)",
        "pl.scan_parquet(out, hive_partitioning=True, hive_schema=partitions)",
    ),
    (
        'partitions = pa.schema([("project_id", pa.string()), ("snapshot_date", pa.date32())])',
        None,
    ),
    ('partitioning = ds.partitioning(partitions, flavor="hive")', None),
    (
        'ds.dataset(OUT, format="parquet", partitioning=partitioning)',
        'ds.dataset(out, format="parquet", partitioning=partitioning)',
    ),
    (
        'spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")',
        None,
    ),
    ("spark.read.parquet(OUT)", "spark.read.parquet(out)"),
    ('df = df.withColumn("snapshot_date", F.to_date("snapshot_date"))', None),
)


def test_readers_queries_are_the_ones_the_tests_run() -> None:
    readers = section(page("output"), "## Reading it")
    tests = (ROOT / "tests" / "ecosystem" / "test_readers.py").read_text(encoding="utf-8")
    tests = " ".join(re.sub(r'"\s*\n\s*"', "", tests).split())  # joined string literals
    for shown, tested in READS:
        documented = shown.replace("'OUT", f"'{LAKE}").replace("(OUT", f'("{LAKE}"')
        assert documented in readers, documented
        assert (tested or shown) in tests, tested or shown
    spark_test = (ROOT / "tests" / "ecosystem" / "test_spark.py").read_text(encoding="utf-8")
    assert "spark.read.parquet(str(tmp_path))" in spark_test
    assert READS[-3][0] in spark_test and READS[-1][0] in spark_test


def test_the_readme_shows_the_safe_polars_read() -> None:
    for line in (READS[1][0], READS[2][0].replace("(OUT", f'("{LAKE}"')):
        assert line in README, line
    assert f'pl.scan_parquet("{LAKE}", hive_partitioning=True)' not in README


def test_the_fault_matrix_has_every_case() -> None:
    matrix = section(page("guarantees"), "## The fault matrix of completeness")
    rows = re.findall(r"^\| (?!case|---)(.+?) \|", matrix, re.MULTILINE)
    assert len(rows) == 11
    assert "`tests/integration/test_completeness.py`" in matrix


def test_no_unfinished_sections() -> None:
    for name, text in [("README.md", README)] + [(f"{p}.md", page(p)) for p in PAGES]:
        assert not re.search(r"\b[A-Z]+_SECTION\b|TODO|TBD|^<!-- generated", text, re.M), name


# --------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site")
    build = _build(ROOT, out)
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def _build(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=240,
        check=False,
    )


def test_the_manual_builds_strictly_with_every_page(site: Path) -> None:
    for name in PAGES:
        built = site / ("index.html" if name == "index" else f"{name}/index.html")
        assert built.is_file(), f"{name} was not built"
    assert (site / "benchmarks" / "index.html").is_file()
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    assert "<code>--max-quarantined N|P%</code>" in reference
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    import connector
    import connector.airflow

    names = [f"connector.{n}" for n in connector.__all__]
    airflow = importlib.import_module("connector.airflow")
    names += [f"connector.airflow.{n}" for n in airflow.__all__]
    for name in names:
        assert f'id="{name}"' in api, f"{name} is not in the API pages"


def test_a_missing_page_fails_the_build(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    copy = tmp_path / "repo"
    copy.mkdir()
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    shutil.copytree(DOCS, copy / "docs")
    for shared in ("connector", "benchmarks"):  # what the generated parts are made from
        (copy / shared).symlink_to(ROOT / shared)
    (copy / "docs" / "guarantees.md").unlink()
    build = _build(copy, tmp_path / "site")
    assert build.returncode != 0
    assert "guarantees.md" in build.stdout + build.stderr


# ---------------------------------------------------------------------- the demo


def test_the_demo_ends_with_a_query_that_runs(tmp_path: Path) -> None:
    """What the demo tells you to run works with what the demo itself needed."""
    demo = subprocess.run(
        [sys.executable, "-m", "connector.cli", "demo", "--records", "300"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    command = demo.stdout.rstrip().splitlines()[-1].strip()
    assert "duckdb" not in command
    query = subprocess.run(
        shlex.split(command), cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert query.returncode == 0, query.stderr
    counts = [int(n) for n in re.findall(r"^│ \w+\s+┆ (\d+)\s+│$", query.stdout, re.MULTILINE)]
    written = pl.scan_parquet(tmp_path / "demo-output").select(pl.len()).collect().item()
    assert "scan_status" in query.stdout and sum(counts) == written > 2 * 900 * 0.9  # two days
    assert "What changed since yesterday" in demo.stdout
    assert re.search(r"^total: \d+ appeared, \d+ removed, \d+ changed$", demo.stdout, re.MULTILINE)


def test_every_report_key_is_documented() -> None:
    """Each key of the run report, and of a project's entry in it, is named in the manual's
    page on the report (as `key`)."""
    from connector.job.report import ProjectReport, RunReport

    text = page("output")
    report = RunReport(run_id="r", snapshot_date="2026-12-08", endpoint="e", started_at="s")
    report.projects["p"] = ProjectReport("p")
    data = report.to_dict()
    keys = set(data) | set(data["projects"]["p"])
    missing = sorted(k for k in keys - {"projects"} if f"`{k}`" not in text)
    assert missing == []
