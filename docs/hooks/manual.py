"""The manual's generated parts, made from the code at build time so that they cannot drift.

mkdocs runs this file as a hook (``hooks:`` in mkdocs.yml). A page asks for a part with a
line of its own, ``<!-- generated: NAME -->``, and the hook puts the part there:

    settings      every key of the settings table (connector.settings.keys.KEYS) with its
                  flag, config-file key and Airflow connection field, and the flag's help
    cli           every command and flag of the argparse parser (connector.cli.build_parser)
    environment   every environment variable the CLI and the simulator read
    package-tree  every package and module under connector/, with its docstring's first
                  paragraph, read from the tree itself
    api           the public names (connector.__all__, connector.airflow.__all__) for
                  mkdocstrings
    changelog     CHANGELOG.md, its links into docs/ made relative to the manual

It also adds ``benchmarks.md``, the text of benchmarks/README.md (which stays where it is).
A marker with an unknown name, or a part that no page asks for, fails the build.
"""

from __future__ import annotations

import argparse
import ast
import html
import importlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the tree's own code, whatever else is installed
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

# Settings that no flag sets: what each means (a key added without a flag and without a line
# here fails the build, so the reference never lists a key without saying what it is).
NOT_FLAGS = {
    "projects": "The config file's `[[projects]]` entries: each with `id` and optionally "
    "`region` or `endpoint`, `enterprise_project_id` and any filter key (that project's own "
    "query).",
    "run_id": "The run's id, 1 to 64 letters, digits, `_` or `-` (default: the start time "
    "and a random suffix, `20261128T043329Z-3f9a1c`); given by a program, e.g. "
    "`HssHook.get_config(run_id=...)`.",
    "auth": "Which credentials a connection holds: `token` (the default), `aksk` or `iam`.",
    "login": "The access key (`aksk`) or the IAM user name (`iam`).",
    "password": "The IAM token (`token`), the secret key (`aksk`) or the IAM user's "
    "password (`iam`).",
    "security_token": "The security token of temporary AK/SK credentials (`aksk`).",
    "domain": "The account (domain) name of an IAM user (`iam`).",
}
CONNECTION_FIELDS = ("login", "password")  # Airflow connection fields, not extras


# ------------------------------------------------------------------------------- text


def _inline(text: str) -> str:
    """Prose for a Markdown table cell: ``code`` kept as code, the rest escaped."""
    parts = re.split(r"(``.+?``|`[^`]+`)", " ".join(text.split()))
    out = []
    for part in parts:
        if part.startswith("`"):
            out.append(_code(part.strip("`")))
        else:
            escaped = html.escape(part, quote=False).replace("|", "\\|")
            out.append(re.sub(r"([*_\[\]])", r"\\\1", escaped))
    return "".join(out)


def _code(text: str) -> str:
    return "`" + text + "`"  # a | inside a code span does not split a table cell


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the CLI


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise RuntimeError("the hss-images parser has no commands")


def _flags(parser: argparse.ArgumentParser) -> Iterator[tuple[str, list[argparse.Action]]]:
    """The parser's option groups, each with its documented actions."""
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.option_strings and a.help != argparse.SUPPRESS and "-h" not in a.option_strings
        ]
        if actions:
            yield group.title or "options", actions


def _flag_rows(
    parser: argparse.ArgumentParser, actions: list[argparse.Action]
) -> list[tuple[str, str]]:
    formatter = parser._get_formatter()
    return [
        (_code(formatter._format_action_invocation(a)), _inline(formatter._expand_help(a)))
        for a in actions
    ]


def _sync_parser() -> argparse.ArgumentParser:
    from connector.cli import build_parser

    return _subcommands(build_parser())["sync"]


def cli_reference() -> str:
    """Every command and flag, from the parser ``hss-images`` itself uses."""
    from connector.cli import build_parser

    parser = build_parser()
    out = [
        "### `hss-images`",
        "",
        _inline(parser.description or ""),
        "",
        _table(
            ("flag", "meaning"), [(_code(f"hss-images {f}"), _inline(h)) for f, h in _top(parser)]
        ),
    ]
    commands = _subcommands(parser)
    sync_flags = [a.option_strings for a in commands["sync"]._actions]
    for name, command in commands.items():
        out += ["", f"### `hss-images {name}`", "", _inline(command.description or "")]
        if name != "sync" and [a.option_strings for a in command._actions] == sync_flags:
            out += [
                "",
                "It takes every flag of [`hss-images sync`](#hss-images-sync), the same way.",
            ]
            continue
        for title, actions in _flags(command):
            out += [
                "",
                f"**{_inline(title)}**",
                "",
                _table(("flag", "meaning"), _flag_rows(command, actions)),
            ]
    return "\n".join(out)


def _top(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    rows = []
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.option_strings and "-h" not in action.option_strings:
            text = (
                "Print the version and exit."
                if isinstance(action, argparse._VersionAction)
                else formatter._expand_help(action)
            )
            rows += [(flag, text) for flag in action.option_strings]
    return rows


# ------------------------------------------------------------------------- settings


def _extras() -> tuple[str, ...]:
    """The Airflow hook's ``EXTRA_KEYS``, read from its source: importing the hook needs
    Airflow, which the manual's build does not install."""
    from connector.settings import keys

    source = (ROOT / "connector" / "airflow" / "hooks" / "hss.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "EXTRA_KEYS" for t in node.targets
        ):
            assert isinstance(node.value, ast.Tuple)
            names: list[str] = []
            for item in node.value.elts:
                if isinstance(item, ast.Starred) and isinstance(item.value, ast.Name):
                    names += getattr(keys, item.value.id)
                elif isinstance(item, ast.Constant) and isinstance(item.value, str):
                    names.append(item.value)
                else:
                    raise RuntimeError(
                        f"EXTRA_KEYS holds {ast.dump(item)}: teach docs/hooks/manual.py"
                    )
            return tuple(names)
    raise RuntimeError("connector/airflow/hooks/hss.py has no EXTRA_KEYS")


def settings_table() -> str:
    """Every key of ``KEYS``: where it can be given, and what it means."""
    from connector.settings.file import FILE_KEYS
    from connector.settings.keys import CONNECTION_KEYS, FILTER_KEYS, KEYS, TUNING_KEYS

    sync = _sync_parser()
    formatter = sync._get_formatter()
    flags = {a.dest: a for a in sync._actions if a.option_strings}
    extras = _extras()
    rows = []
    for key in KEYS:
        action = flags.get(key)
        if action is not None:
            flag = _code(formatter._format_action_invocation(action))
            meaning = formatter._expand_help(action)
        elif key in NOT_FLAGS:
            flag, meaning = "", NOT_FLAGS[key]
        else:
            raise RuntimeError(
                f"setting {key!r} has no flag and no line in NOT_FLAGS (docs/hooks/manual.py)"
            )
        if key in FILE_KEYS:
            file = _code(key)
        elif key == "projects":
            file = _code("[[projects]]")
        elif key == "all_projects":
            file = _code('project_ids = "all"')
        else:
            file = ""
        if key in CONNECTION_FIELDS:
            airflow = f"field {key}"
        elif key in extras:
            airflow = f"extra {_code(key)}"
        elif key == "all_projects":
            airflow = f"extra {_code('project_ids: all')}"
        else:
            airflow = ""
        kind = (
            "filter"
            if key in FILTER_KEYS
            else "tuning"
            if key in TUNING_KEYS
            else "connection"
            if key in CONNECTION_KEYS
            else "run"
        )
        rows.append((_code(key), kind, flag, file, airflow, _inline(meaning)))
    return _table(("key", "kind", "flag", "config file", "Airflow connection", "meaning"), rows)


def environment_table() -> str:
    from connector.cli import ENVIRONMENT
    from connector.simulator.cli import ENVIRONMENT as SIMULATOR

    rows = [
        (_code(name), "hss-images sync, check", _inline(text)) for name, text in ENVIRONMENT.items()
    ]
    rows += [
        (_code(name), "hss-images simulate", _inline(text)) for name, text in SIMULATOR.items()
    ]
    return _table(("variable", "read by", "meaning"), rows)


# ---------------------------------------------------------------------- package tree


def _summary(path: Path) -> str:
    """The first paragraph of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not doc:
        raise RuntimeError(f"{path.relative_to(ROOT)} has no docstring: say what it owns")
    return " ".join(doc.split("\n\n")[0].split())


def package_modules() -> list[tuple[str, str]]:
    """Every package (``connector/x/``) and module (``connector/x/y.py``) and what it owns."""
    rows: list[tuple[str, str]] = []

    def walk(folder: Path) -> None:
        init = folder / "__init__.py"
        rows.append((f"{folder.relative_to(ROOT).as_posix()}/", _summary(init)))
        for module in sorted(folder.glob("*.py")):
            if module.name != "__init__.py":
                rows.append((module.relative_to(ROOT).as_posix(), _summary(module)))
        for sub in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file()):
            walk(sub)

    walk(ROOT / "connector")
    return rows


def package_tree() -> str:
    return _table(
        ("package or module", "what it owns"),
        [(_code(p), _inline(s)) for p, s in package_modules()],
    )


# ------------------------------------------------------------------------------- API


def api_reference() -> str:
    import connector
    import connector.airflow

    out = ["## `connector`", ""]
    out += [f"::: connector.{name}\n" for name in connector.__all__]
    out += [
        "## `connector.airflow`",
        "",
        "Needs Apache Airflow 3: `pip install 'hss-image-connector[airflow]'`.",
        "",
    ]
    # the module itself, not the package's attribute (a test may have unset that)
    airflow = importlib.import_module("connector.airflow")
    out += [f"::: connector.airflow.{name}\n" for name in airflow.__all__]
    return "\n".join(out)


def changelog() -> str:
    """CHANGELOG.md below its title (the page has its own), links into docs/ made relative."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    body = text.split("\n", 1)[1].lstrip("\n")
    return body.replace("](docs/", "](")


GENERATED: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "cli": cli_reference,
    "environment": environment_table,
    "package-tree": package_tree,
    "api": api_reference,
    "changelog": changelog,
}


def fill(markdown: str, where: str, used: set[str] | None = None) -> str:
    """``markdown`` with every marker replaced by its generated part."""

    def part(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATED:
            raise ValueError(f"{where}: no generated part {name!r}; known: {', '.join(GENERATED)}")
        if used is not None:
            used.add(name)
        return GENERATED[name]()

    return MARKER.sub(part, markdown)


# ---------------------------------------------------------------------- mkdocs hooks

_used: set[str] = set()


def on_pre_build(config: Any) -> None:
    _used.clear()


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    text = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    note = "*This page is `benchmarks/README.md`, as it is in the repository.*\n\n"
    files.append(File.generated(config, "benchmarks.md", content=note + text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    from mkdocs.exceptions import PluginError

    try:
        return fill(markdown, page.file.src_uri, _used)
    except (ValueError, RuntimeError) as error:
        raise PluginError(str(error)) from error


def on_post_build(config: Any) -> None:
    from mkdocs.exceptions import PluginError

    missing = sorted(set(GENERATED) - _used)
    if missing:
        raise PluginError(f"no page shows the generated part(s) {', '.join(missing)}")
