"""Would a sync work? Reach each project once, check the output can be written; write nothing.

    probe(config) -> [ProbeResult per project]      one small page per project
    check_output(config) -> [OutputResult]          the lake (and the report's folder)
    check_async(config) -> CheckResult              both, for ``hss-images check``

One small request (offset 0, ``limit`` records) per project, tried once: it answers "would
a sync get in?" quickly, with the API's own error (``error_code``, HTTP status) when it
would not. A probe gives up after ``PROBE_TIMEOUT_S`` on listing the projects through IAM
(``all_projects``) and again on each project's request (from when it leaves the rate
limiter), and says what did not answer; a sync's own timeouts and retries are untouched.
Used by ``HssHook.test_connection`` (the Airflow UI's "Test" button and ``airflow
connections test``) and by ``hss-images check``.

The output is opened with the writer's own code (``open_lake``, ``check_bucket``,
``check_query``) and checked without leaving anything behind, and without writing into the
lake (``OUT``), its state folder (``OUT.connector``) or the report:

- local disk: a folder that exists must be a folder this user may write (``access(2)``: mode
  bits, ACLs, read-only mounts); for one that does not exist yet, an empty temporary file is
  created and removed in its nearest existing parent, where the run would create it. Also:
  ``OUT`` and ``OUT.connector`` on one filesystem (a partition is published by one
  rename), and free space.
- object storage: S3 grants writing per action and per key, so only a write proves it. One
  empty object, ``<OUT>.hss-check-<random>``, is put beside the lake (not under ``OUT/`` or
  ``OUT.connector/``: no reader of the lake lists it; named after the lake, so a policy
  that grants ``prefix/OUT*`` covers it as it covers the run's keys) and deleted at once.
  pyarrow re-creates the parent's zero-byte folder marker after a delete: once a run has
  written there that marker exists already (the run's own ``create_dir`` made it), so the
  check leaves nothing; before the first run it leaves that marker, the one the first run
  creates anyway.
- the lake's query (``lake.json``) is read: a lake of another query is refused as the run
  would refuse it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from connector.errors import ConfigError, ConnectorError, TransportError, worst_exit_code
from connector.job.report import check_report_path
from connector.lake.layout import Lake, canonical_query
from connector.lake.writer import check_bucket, check_query, open_lake
from connector.redaction import Redactor
from connector.settings.config import DEFAULT_TABLE, Config, Target, iam_endpoint_for
from connector.source.client import PageRequest
from connector.source.readers import open_readers

__all__ = [
    "DISCOVERY",
    "PROBE_LIMIT",
    "PROBE_TIMEOUT_S",
    "CheckResult",
    "OutputResult",
    "ProbeResult",
    "check_async",
    "check_output",
    "probe",
    "probe_async",
]

DISCOVERY = "(all projects)"
"""The project column of a probe whose listing of the projects (``all_projects``) failed."""

PROBE_LIMIT = 10
"""Records asked for by a probe: the API's smallest page."""

PROBE_TIMEOUT_S = 4.0
"""How long a probe waits for IAM's listing of the projects, and then for each project's
page (an IAM token for it included): a probe of one project ends within twice this, inside
the 10 s an Airflow "Test" button may take."""


def _probe_config(config: Config) -> Config:
    """``config`` as a probe uses it: one try per request, no timeout beyond
    ``PROBE_TIMEOUT_S`` (the deadlines around each step bound it anyway)."""
    fetch = config.fetch
    seconds = PROBE_TIMEOUT_S
    return replace(
        config,
        fetch=replace(
            fetch,
            connect_timeout_s=min(fetch.connect_timeout_s, seconds),
            read_timeout_s=min(fetch.read_timeout_s, seconds),
            request_timeout_s=min(fetch.request_timeout_s, seconds),
            retry=replace(
                fetch.retry, max_attempts=1, max_elapsed_s=min(fetch.retry.max_elapsed_s, seconds)
            ),
        ),
    )


def _iam_of(config: Config) -> str:
    """The IAM endpoint discovery asks (``discover_projects``), for a message."""
    identity = config.auth.iam.iam_endpoint if config.auth.iam is not None else None
    derived = iam_endpoint_for(config.endpoint) if config.endpoint else None
    return config.iam_endpoint or identity or derived or "its IAM endpoint"


def _no_answer(what: str, project_id: str | None = None) -> TransportError:
    return TransportError(
        f"no answer from {what} within {PROBE_TIMEOUT_S:g} s (a probe tries once and waits "
        "no longer; a sync waits and retries as its timeouts and retry settings say)",
        project_id=project_id,
    )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one project's probe found; ``error`` is redacted."""

    project_id: str
    endpoint: str
    total_num: int | None = None
    error_type: str | None = None
    error: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.error_type is None


async def probe_async(
    config: Config,
    *,
    projects: int | None = None,
    limit: int = PROBE_LIMIT,
    redactor: Redactor | None = None,
) -> list[ProbeResult]:
    """Probe the first ``projects`` projects of ``config`` (all by default), in order.

    Never raises a ``ConnectorError``: each failure is the result of its project. The
    requests share one session and are paced as a sync paces them (``--rate``,
    ``--burst``, at most ``--concurrency`` in flight per endpoint).
    """
    redactor = redactor if redactor is not None else Redactor()
    redactor.add(*config.auth.secrets())
    config = _probe_config(config)
    results: dict[str, ProbeResult] = {}
    async with contextlib.AsyncExitStack() as stack:
        # the projects a sync would read (IAM lists them first, for all projects), paced as
        # a sync paces them: --rate and --concurrency per endpoint and credential
        try:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    readers = await stack.enter_async_context(
                        open_readers(config, redactor=redactor)
                    )
            except TimeoutError:
                raise _no_answer(f"IAM at {_iam_of(config)} (listing the projects)") from None
        except ConnectorError as error:
            if not config.all_projects:
                raise
            where = f"{config.endpoint} (projects listed through IAM)"
            return [_failed(DISCOVERY, where, error, redactor)]
        config = readers.config
        targets = config.targets[:projects] if projects is not None else config.targets

        async def one(target: Target) -> None:
            params = tuple(config.filters_of(target).params())
            request = PageRequest(target.project_id, 0, limit, params)
            async with readers.limiter(target.endpoint).request():
                try:
                    try:
                        async with asyncio.timeout(PROBE_TIMEOUT_S):
                            page = await readers.client(target.endpoint).get_page(request)
                    except TimeoutError:
                        raise _no_answer(target.endpoint, target.project_id) from None
                except ConnectorError as error:
                    results[target.project_id] = _failed(
                        target.project_id, target.endpoint, error, redactor
                    )
                    return
            results[target.project_id] = ProbeResult(
                target.project_id, target.endpoint, total_num=page.total_num
            )

        async with asyncio.TaskGroup() as group:
            for target in targets:
                group.create_task(one(target))
    return [results[t.project_id] for t in targets]


def _failed(project: str, endpoint: str, error: ConnectorError, redactor: Redactor) -> ProbeResult:
    return ProbeResult(
        project,
        endpoint,
        error_type=type(error).__name__,
        error=redactor(str(error)),
        exit_code=error.exit_code,
    )


def probe(
    config: Config, *, projects: int | None = None, limit: int = PROBE_LIMIT
) -> list[ProbeResult]:
    """``probe_async`` from synchronous code (not inside a running event loop)."""
    return asyncio.run(probe_async(config, projects=projects, limit=limit))


# -- the output -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputResult:
    """What checking one place the run writes found; ``detail`` says what or why not."""

    what: str
    """``output`` (the lake), ``table`` (``--format iceberg``) or ``report``."""
    location: str
    ok: bool
    detail: str


def check_output(config: Config) -> list[OutputResult]:
    """Check the lake and the report's folder as a run would use them; blocking (a thread)."""
    results = [_check_lake(config)]
    if config.format == "iceberg":
        results.append(_check_table(config))
    if config.report_path:
        try:
            # creates and removes an empty probe file beside the report, never the report
            check_report_path(config.report_path)
            results.append(OutputResult("report", config.report_path, True, "writable"))
        except ConfigError as error:
            results.append(OutputResult("report", config.report_path, False, str(error)))
    return results


def _check_lake(config: Config) -> OutputResult:
    out = config.out
    try:
        lake = open_lake(out, config.s3_endpoint)
        if lake.local:
            detail = _local_writable(lake)
        else:
            check_bucket(lake)
            detail = _remote_writable(lake)
        lake_query = lake.read_query()
        check_query(lake, lake_query, canonical_query(config.filters.params()), out)
    except ConnectorError as error:
        return OutputResult("output", out, False, f"{type(error).__name__}: {error}")
    except OSError as exc:
        return OutputResult("output", out, False, f"cannot use the output: {_reason(exc)}")
    held = "holds this query's inventory" if lake_query else "no lake there yet"
    return OutputResult("output", out, True, f"{detail}; {held}")


def _check_table(config: Config) -> OutputResult:
    """``--format iceberg``: the catalog answers, the table (if any) holds this query."""
    from connector.lake.iceberg import check_table

    where = config.table or DEFAULT_TABLE
    try:
        return OutputResult("table", where, True, check_table(config))
    except ConnectorError as error:
        return OutputResult("table", where, False, f"{type(error).__name__}: {error}")


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{f' ({exc.filename})' if exc.filename else ''}"
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _local_writable(lake: Lake) -> str:
    """The folders a run writes: ``OUT`` and ``OUT.connector`` (with its own subfolders)."""
    root, state = Path(lake.root), Path(lake.state)
    created: dict[Path, list[str]] = {}
    for folder in (root, state, state / "locks", state / "staging", state / "quarantine"):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"{folder} exists and is not a folder", setting="out")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ConfigError(f"cannot write in {folder}: {_denied(folder)}", setting="out")
        elif folder in (root, state):
            parent = _nearest_existing(folder.parent)
            if not parent.is_dir():
                raise ConfigError(
                    f"cannot create {folder}: {parent} is not a folder", setting="out"
                )
            if parent not in created:
                _probe_folder(parent, folder)
            created.setdefault(parent, []).append(str(folder.relative_to(parent)))
    if _nearest_existing(root).stat().st_dev != _nearest_existing(state).stat().st_dev:
        raise ConfigError(
            f"{root} is the root of a mounted filesystem, and the run keeps its staging "
            f"beside it ({state}, on another filesystem), so a partition could not be "
            f"replaced by one rename: use a folder inside the mount, e.g. {root}/hss_images",
            setting="out",
        )
    usage = os.statvfs(_nearest_existing(root))
    free = usage.f_bavail * usage.f_frsize
    if free == 0:
        raise ConfigError(f"no space left on the filesystem of {root}", setting="out")
    made = "".join(
        f"; a run creates {', '.join(names)} in {parent}" for parent, names in created.items()
    )
    return f"writable ({_size(free)} free{made})"


def _denied(folder: Path) -> str:
    """Why ``access(2)`` refused: a read-only mount, or the folder's permissions."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "permission denied (this user may not write there)"


def _probe_folder(parent: Path, wanted: Path) -> None:
    """Create and remove an empty file where the run would create ``wanted``."""
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".hss-check-", suffix=".probe"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot create {wanted} in {parent}: {_reason(exc)}", setting="out"
        ) from None


def _remote_writable(lake: Lake) -> str:
    """Put and delete one empty object beside the lake (see the module's docstring)."""
    fs = lake.fs
    parent, _, name = lake.root.rpartition("/")
    probe_key = f"{parent}/{name}.hss-check-{secrets.token_hex(6)}"
    try:
        with fs.open_output_stream(probe_key):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write beside the lake (an empty probe object {probe_key}): {_reason(exc)}",
            setting="out",
        ) from None
    try:
        fs.delete_file(probe_key)
    except OSError as exc:
        raise ConfigError(
            f"wrote but cannot delete the probe object {probe_key} ({_reason(exc)}); a run "
            "deletes objects too (an old quarantine file): grant that, and remove the probe",
            setting="out",
        ) from None
    return "writable (an empty object put and deleted beside it)"


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- the whole check --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``hss-images check``: every project's probe and every output's check."""

    auth_kind: str
    projects: list[ProbeResult]
    outputs: list[OutputResult]

    @property
    def exit_code(self) -> int:
        """0 all fine; else the worst failure by ``EXIT_PRECEDENCE``, as a sync gives it:
        2 a configuration problem (an output that cannot be used included), 3 the API."""
        codes = [2 for o in self.outputs if not o.ok]
        codes += [2 if p.exit_code == 2 else 3 for p in self.projects if not p.ok]
        return worst_exit_code(codes)

    def table(self) -> str:
        """The projects, then the outputs, as aligned columns; a last line with the verdict."""
        rows = [("PROJECT", "ENDPOINT", "AUTH", "RESULT", "DETAIL")]
        for p in self.projects:
            detail = f"{p.total_num:,} image(s) visible" if p.ok else f"{p.error_type}: {p.error}"
            rows.append((p.project_id, p.endpoint, self.auth_kind, _verdict(p.ok), detail))
        lines = _columns(rows)
        lines.append("")
        lines += _columns(
            [("OUTPUT", "LOCATION", "RESULT", "DETAIL")]
            + [(o.what, o.location, _verdict(o.ok), o.detail) for o in self.outputs]
        )
        reachable = sum(p.ok for p in self.projects)
        writable = all(o.ok for o in self.outputs)
        lines.append("")
        lines.append(
            f"{reachable} of {len(self.projects)} project(s) reachable; output "
            f"{'writable' if writable else 'NOT usable'}; nothing was written; "
            f"exit code {self.exit_code}"
        )
        return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "FAILED"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


async def check_async(config: Config, *, redactor: Redactor | None = None) -> CheckResult:
    """Check the output (in a thread) and probe every project, at the same time."""
    redactor = redactor if redactor is not None else Redactor()
    outputs, projects = await asyncio.gather(
        asyncio.to_thread(check_output, config), probe_async(config, redactor=redactor)
    )
    outputs = [OutputResult(o.what, o.location, o.ok, redactor(o.detail)) for o in outputs]
    return CheckResult(config.auth.kind, projects, outputs)
