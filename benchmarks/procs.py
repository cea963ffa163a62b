"""Child processes: the simulator (served in its own process) and measured programs.

A measured program runs as a direct child and is reaped with ``os.wait4``, whose rusage
gives exactly that process's CPU time (user + sys) and its peak RSS (``ru_maxrss``),
nothing of the benchmark driver's or the simulator's. The simulator's CPU is read from
``/proc/PID/stat`` before and after each measured run, so its share of the two cores is
reported next to the client's.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Measured", "Simulator", "child_env", "measure", "python_command"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


def child_env(pycache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: no stray credentials, bytecode cached.

    ``PYTHONDONTWRITEBYTECODE`` (set on some machines) would make every child compile its
    modules again, which an installed package never does; a private bytecode cache
    (``PYTHONPYCACHEPREFIX``), filled by a warm-up run, puts that cost out of the figures.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HSS_", "AWS_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # dlt: never try to phone home
    env.update(extra or {})
    return env


@dataclass(frozen=True, slots=True)
class Measured:
    """One finished child process."""

    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_bytes: int
    stdout: str
    stderr: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def check(self, what: str) -> None:
        if self.returncode != 0:
            tail = "\n".join(self.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"{what} exited with {self.returncode}:\n{tail}")


def measure(
    command: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout_s: float,
) -> Measured:
    """Run ``command`` to completion; its wall time, CPU and peak RSS."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        reaped: list[tuple[int, int, resource.struct_rusage]] = []
        waiter = threading.Thread(target=lambda: reaped.append(os.wait4(proc.pid, 0)))
        waiter.start()
        waiter.join(timeout_s)
        if waiter.is_alive():
            proc.kill()
            waiter.join()
            raise TimeoutError(f"{command[0]} ... did not finish within {timeout_s:.0f} s")
        wall = time.perf_counter() - started
    _, status, usage = reaped[0]
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Measured(
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        max_rss_bytes=usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


class Simulator:
    """``hss-images simulate`` in its own process, serving until stopped."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str],
        workdir: Path,
    ) -> None:
        self.args = list(args)
        self.env = env
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def __enter__(self) -> Simulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = python_command("-m", "connector.simulator", "--port", "0", *self.args)
        self._stderr = (self.workdir / "simulator.stderr").open("wb")
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        assert self.proc.stdout is not None
        line = _read_line(self.proc.stdout, timeout_s=60)
        if not line.startswith("http"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.base_url = line.strip()
        return self

    def cpu_s(self) -> float:
        """CPU seconds (user + sys) the simulator used so far (Linux ``/proc``; else 0)."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def _read_line(stream: object, *, timeout_s: float) -> str:
    """The first line of a child's stdout, or '' when none comes in time."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()))  # type: ignore[attr-defined]
    reader.daemon = True
    reader.start()
    reader.join(timeout_s)
    return got[0].decode() if got else ""
