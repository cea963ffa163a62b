"""Drift: when and where a project's inventory changes while it is being read."""

from __future__ import annotations

import random
from dataclasses import dataclass

from connector.simulator.config import DriftConfig

__all__ = ["DriftEvent", "DriftPlan", "DriftPlanner"]


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """One change: after page request ``request_number`` (1-based) served at ``offset``.

    ``moved`` lists the records moved to the front, in the order they were moved (the last
    one is first after the event).
    """

    request_number: int
    offset: int
    inserted: tuple[str, ...]
    deleted: tuple[str, ...]
    moved: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DriftPlan:
    """Positions to delete (descending, applied first), then to insert at (in order), then
    of the records to move to the front (in the list after the inserts, in moving order)."""

    deletes: tuple[int, ...]
    inserts: tuple[int, ...]
    moves: tuple[int, ...] = ()


class DriftPlanner:
    """Seeded per project: the same request sequence drifts the same way."""

    def __init__(self, config: DriftConfig, seed: int, project_id: str) -> None:
        self._config = config
        self._rng = random.Random(f"{seed}\x00{project_id}\x00drift")
        self.events = 0

    def due(self, page_requests: int) -> bool:
        config = self._config
        return (
            config.every_n_requests > 0
            and page_requests % config.every_n_requests == 0
            and (config.max_events is None or self.events < config.max_events)
        )

    def plan(self, size: int, horizon: int) -> DriftPlan:
        """Changes among the first ``horizon`` of ``size`` positions (up to the page served)."""
        horizon = max(0, min(horizon, size))
        deletes = self._rng.sample(range(horizon), min(self._config.deletes, horizon))
        remaining = horizon - len(deletes)
        inserts = []
        for _ in range(self._config.inserts):
            inserts.append(self._rng.randint(0, remaining))
            remaining += 1
        moves: list[int] = []
        if self._config.moves:
            after = size - len(deletes) + len(inserts)
            moves = self._rng.sample(range(1, after), min(self._config.moves, max(0, after - 1)))
        self.events += 1
        return DriftPlan(tuple(sorted(deletes, reverse=True)), tuple(inserts), tuple(moves))
