"""What a real API gateway may do to a page, deterministic by seed (see ``GatewayConfig``).

Page behaviours (short, empty, missing ``data_list``, swapped across the page boundary)
are drawn per page response from one seeded stream per project, as transport faults are,
so a project's n-th page response is altered the same way whatever other projects do, and
a re-read of the same page usually gets it whole. The reported ``total_num`` draws its
jitter from a second per-project stream, so turning jitter on does not change which
responses are altered.

Page cuts (``cut_pages``, ``short_at_total``) are not drawn but counted per project, and
applied once the reported total is known. The page cap and ``serve_until`` are properties
of the server, applied by ``Inventory.serve_page``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass

from connector.simulator.config import GatewayConfig

__all__ = ["GatewayBehaviours", "PageBehaviour", "PageShape"]


class PageBehaviour(enum.Enum):
    SHORT = "short"
    EMPTY = "empty"
    MISSING_DATA_LIST = "missing_data_list"
    SWAP = "swap"
    CUT = "cut"
    SHORT_AT_TOTAL = "short_at_total"


_RATE_FIELDS = (
    (PageBehaviour.SHORT, "short_page_rate"),
    (PageBehaviour.EMPTY, "empty_page_rate"),
    (PageBehaviour.MISSING_DATA_LIST, "missing_data_list_rate"),
    (PageBehaviour.SWAP, "swap_rate"),
)


@dataclass(frozen=True, slots=True)
class PageShape:
    """A behaviour drawn for one response; ``fraction`` (in [0, 1)) sizes a short page."""

    behaviour: PageBehaviour
    fraction: float = 0.0

    def apply(
        self, result: Sequence[int], offset: int, keys: Sequence[int]
    ) -> tuple[Sequence[int], PageBehaviour | None]:
        """The keys served instead of ``keys`` (= ``result[offset:offset + n]``), and the
        behaviour if it changed anything (``None``: the page is served as it is)."""
        behaviour = self.behaviour
        served = len(keys)
        if behaviour is PageBehaviour.SHORT:
            if served < 2:
                return keys, None
            return keys[: 1 + int(self.fraction * (served - 1))], behaviour
        if behaviour is PageBehaviour.EMPTY:
            return ((), behaviour) if served else (keys, None)
        if behaviour is PageBehaviour.MISSING_DATA_LIST:
            return (), behaviour
        end = offset + served  # SWAP: positions end - 2 and end trade places
        if served < 2 or end >= len(result):
            return keys, None
        swapped = list(keys)
        swapped[-2] = result[end]
        return swapped, behaviour


class GatewayBehaviours:
    """Decides, response by response, how a project's page is altered and its total told."""

    def __init__(self, config: GatewayConfig, seed: int) -> None:
        self._config = config
        self._seed = seed
        self._streams: dict[str, random.Random] = {}
        self._totals: dict[str, random.Random] = {}
        edges: list[tuple[PageBehaviour, float]] = []
        total = 0.0
        for behaviour, name in _RATE_FIELDS:
            rate = float(getattr(config, name))
            if rate > 0:
                total += rate
                edges.append((behaviour, total))
        self._edges = tuple(edges)
        self.page_enabled = bool(edges)
        self.total_enabled = config.total_enabled
        self.cuts_enabled = config.cuts_enabled
        self._cuts = {cut.offset: cut for cut in config.cut_pages}
        self._cut_answers: dict[tuple[str, int], int] = {}
        self._short_at_total: dict[str, int] = {}

    def _stream(
        self, streams: dict[str, random.Random], project_id: str, name: str
    ) -> random.Random:
        rng = streams.get(project_id)
        if rng is None:
            rng = streams[project_id] = random.Random(f"{self._seed}\x00{project_id}\x00{name}")
        return rng

    def draw(self, project_id: str) -> PageShape | None:
        """The behaviour for this page response of the project, if any (one draw each)."""
        if not self._edges:
            return None
        rng = self._stream(self._streams, project_id, "gateway")
        draw = rng.random()
        for behaviour, edge in self._edges:
            if draw < edge:
                if behaviour is PageBehaviour.SHORT:
                    return PageShape(behaviour, rng.random())
                return PageShape(behaviour)
        return None

    def reported_total(self, project_id: str, total: int) -> int:
        """``total_num`` as reported: skewed, jittered (one draw per call), never negative."""
        config = self._config
        reported = total + config.total_skew
        if config.total_jitter:
            rng = self._stream(self._totals, project_id, "total")
            reported += rng.randint(-config.total_jitter, config.total_jitter)
        return max(0, reported)

    def cut(
        self, project_id: str, offset: int, served: int, total: int
    ) -> tuple[int, PageBehaviour | None]:
        """How many of the ``served`` records this answer at ``offset`` keeps, given the
        reported ``total``; and the cut if it kept fewer (``cut_pages`` first, then
        ``short_at_total``). Counts the answer."""
        behaviour = None
        cut = self._cuts.get(offset)
        if cut is not None:
            answers = self._cut_answers.get((project_id, offset), 0)
            if answers < cut.times:
                self._cut_answers[project_id, offset] = answers + 1
                if cut.length < served:
                    served, behaviour = cut.length, PageBehaviour.CUT
        if offset < total < offset + served:
            used = self._short_at_total.get(project_id, 0)
            if used < self._config.short_at_total:
                self._short_at_total[project_id] = used + 1
                served, behaviour = total - offset, PageBehaviour.SHORT_AT_TOTAL
        return served, behaviour
