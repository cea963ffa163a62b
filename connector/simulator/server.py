"""Running the simulator: in the current event loop, or in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from connector.simulator.app import create_app
from connector.simulator.config import SimulatorConfig
from connector.simulator.inventory import Inventory
from connector.simulator.stats import SimulatorStats

__all__ = ["RunningSimulator", "running_simulator", "simulator_in_thread"]

DEFAULT_SHUTDOWN_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A served simulator: where it listens and its inventory and statistics."""

    base_url: str
    host: str
    port: int
    config: SimulatorConfig
    inventory: Inventory
    stats: SimulatorStats

    def url(self, project_id: str) -> str:
        """The list URL of one project."""
        return f"{self.base_url}/v5/{quote(project_id, safe='')}/image/local-repositories"


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@asynccontextmanager
async def running_simulator(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator in the running loop; ``port=0`` picks a free port."""
    config = config or SimulatorConfig()
    inventory = Inventory(config)
    stats = SimulatorStats()
    app = create_app(config, inventory=inventory, stats=stats)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        yield RunningSimulator(
            base_url=_base_url(host, bound_port),
            host=host,
            port=bound_port,
            config=config,
            inventory=inventory,
            stats=stats,
        )
    finally:
        await runner.cleanup()


class _ServerThread:
    """A thread with its own event loop serving one simulator until told to stop."""

    def __init__(
        self, config: SimulatorConfig | None, host: str, port: int, shutdown_timeout: float
    ) -> None:
        self._args = (config, host, port, shutdown_timeout)
        self._thread = threading.Thread(target=self._run, name="hss-simulator", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.simulator: RunningSimulator | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed over to the caller's thread
            self.error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        config, host, port, shutdown_timeout = self._args
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        async with running_simulator(
            config, host=host, port=port, shutdown_timeout=shutdown_timeout
        ) as simulator:
            self.simulator = simulator
            self._ready.set()
            await self._stop_event.wait()

    def start(self, timeout: float) -> RunningSimulator:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the simulator did not start within {timeout} s")
        if self.simulator is None:
            raise RuntimeError("the simulator failed to start") from self.error
        return self.simulator

    def stop(self, timeout: float) -> None:
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop_event.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the simulator thread did not stop within {timeout} s")


@contextmanager
def simulator_in_thread(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    startup_timeout: float = 10.0,
) -> Iterator[RunningSimulator]:
    """Serve the simulator from a background thread with its own event loop.

    The inventory and stats belong to that loop: inspect them when no request is in flight.
    """
    thread = _ServerThread(config, host, port, shutdown_timeout)
    try:
        yield thread.start(startup_timeout)
    finally:
        thread.stop(startup_timeout + shutdown_timeout)
    if thread.error is not None:
        raise RuntimeError("the simulator thread failed") from thread.error
