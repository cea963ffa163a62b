"""How the connector names a setting in what it says: by its key, as the front end in use
spells it.

The library knows a setting only by its key (a key of ``connector.settings.keys.KEYS``:
``max_quarantined``, ``out``, ``total_num_tolerance``), never by one front end's spelling of
it. Each front end renders a key as its own name:

    the command line          --max-quarantined            (connector.cli.flag)
    an Airflow connection     connection 'hss_default' extra max_quarantined
    the Airflow operator      argument max_quarantined
    the Python API            max_quarantined              (the key: a field of Config)

(a value read from a config file is named ``file hss.toml key max_quarantined`` where it is
wrong: that is its source, ``connector.settings.file``, not a way of speaking.)

A front end wraps what it calls in ``naming(its_names)``; the outermost one holds (the
operator's names stand inside the hook it uses), and asyncio tasks and ``asyncio.to_thread``
inherit it. Then:

- an error names a setting with ``setting(key)`` in its message (or ``ConfigError(...,
  setting=key)`` for the setting at fault); the error keeps the keys (``error.settings``) and
  renders them when it is shown, as the front end it was raised under names them (else the
  one showing it; else by key), so a pickled error reads the same in another process;
- a log line names one with ``name(key)``: rendered as the line is logged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = [
    "Names",
    "mentioned",
    "name",
    "name_and_key",
    "names_in_use",
    "naming",
    "render",
    "setting",
]

Names = Callable[[str], str]
"""A front end's name for a setting key (``max_quarantined`` -> ``--max-quarantined``)."""

_IN_USE: ContextVar[Names | None] = ContextVar("hss_setting_names", default=None)
_MENTION = re.compile(r"\{setting:([a-z][a-z0-9_]*)\}")


def setting(key: str) -> str:
    """The setting ``key`` mentioned in an error's message; rendered when the error is shown."""
    return "{setting:" + key + "}"


def mentioned(text: str) -> tuple[str, ...]:
    """The keys of the settings ``text`` mentions, in order, each once."""
    return tuple(dict.fromkeys(_MENTION.findall(text)))


def names_in_use() -> Names | None:
    """The names of the front end in use (``None``: a plain library call)."""
    return _IN_USE.get()


def name(key: str) -> str:
    """``key`` as the front end in use names it, else the key itself (for log lines)."""
    names = _IN_USE.get()
    return key if names is None else names(key)


def name_and_key(key: str) -> str:
    """``name(key)``, followed by the key when the name does not show it (a flag: a config
    file or a connection knows the setting by its key): ``--memory-limit (memory_limit)``."""
    named = name(key)
    return named if key in named else f"{named} ({key})"


def render(text: str, names: Names | None = None) -> str:
    """``text`` with every setting it mentions named by ``names``, else as the front end in
    use names it, else by its key."""
    return _MENTION.sub(lambda found: (names or name)(found[1]), text)


@contextlib.contextmanager
def naming(names: Names) -> Iterator[None]:
    """Inside, settings are named by ``names``, unless a front end around this one names
    them already: the outermost front end is the one a person talks to."""
    if _IN_USE.get() is not None:
        yield
        return
    token = _IN_USE.set(names)
    try:
        yield
    finally:
        _IN_USE.reset(token)
