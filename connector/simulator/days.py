"""The inventory as it is on a given day: ``SimulatorConfig.day`` (``--day N``).

Day 0 is the inventory the seed describes. Each later day changes the day before it, one
seeded draw per (seed, project, day), so day N is the same wherever and whenever it is
served:

- ``daily_remove_rate`` of the records present go away (every row of the record);
- ``daily_rescan_rate`` of the others are scanned again: the scan finishes (``success``,
  now and then ``failed``), ``latest_scan_time`` moves to that day, the vulnerability
  count, severity and malicious files change;
- ``daily_appear_rate`` (of the records present) new records appear at seeded places in
  the list, with keys after every key used so far.

``history`` is the simulator's own record of what each day changed, by key; the
inventory turns keys into records (``Inventory.day_changes``).
"""

from __future__ import annotations

import random
import struct
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from connector.simulator.generator import FAILED, SCAN_END, SUCCESS, Core, severity_of

__all__ = ["DAY_MS", "DayChanges", "Days", "rescanned_core"]

DAY_MS = 86_400_000
_RESCAN_EPOCH = SCAN_END + 1
"""Day d's rescans finish on this date plus d days: later than any scan of day 0."""
_U64X4 = struct.Struct("<4Q")


@dataclass(frozen=True, slots=True)
class DayChanges:
    """What one day changed, by record key."""

    day: int
    appeared: tuple[int, ...]
    removed: tuple[int, ...]
    rescanned: tuple[int, ...]


class Days:
    """A project's list on ``day``: its keys in order, and each key's last rescan day."""

    __slots__ = ("history", "next_key", "order", "revisions")

    def __init__(
        self,
        seed: int,
        project_id: str,
        order: Sequence[int],
        next_key: int,
        day: int,
        rates: tuple[float, float, float],
    ) -> None:
        appear_rate, remove_rate, rescan_rate = rates
        keys = list(order)
        self.revisions: dict[int, int] = {}
        self.history: list[DayChanges] = []
        for today in range(1, day + 1):
            rng = random.Random(f"{seed}\x00{project_id}\x00day\x00{today}")
            present = list(dict.fromkeys(keys))
            removed = rng.sample(present, round(len(present) * remove_rate))
            gone = set(removed)
            keys = [key for key in keys if key not in gone]
            staying = [key for key in present if key not in gone]
            rescanned = rng.sample(staying, round(len(present) * rescan_rate))
            for key in rescanned:
                self.revisions[key] = today
            appeared = list(range(next_key, next_key + round(len(present) * appear_rate)))
            next_key += len(appeared)
            for key in appeared:
                keys.insert(rng.randrange(len(keys) + 1), key)
            self.history.append(
                DayChanges(today, tuple(appeared), tuple(sorted(removed)), tuple(sorted(rescanned)))
            )
        self.order = array("q", keys)
        self.next_key = next_key


def rescanned_core(
    core: Callable[[int], Core], revisions: dict[int, int], digest: Callable[[int, int], bytes]
) -> Callable[[int], Core]:
    """``core`` with each key in ``revisions`` as its last rescan left it; ``digest(key,
    day)``: 32 seeded bytes for that rescan."""

    def revised(key: int) -> Core:
        base = core(key)
        day = revisions.get(key)
        if day is None:
            return base
        u0, u1, u2, u3 = _U64X4.unpack(digest(key, day))
        status = FAILED if u0 % 100 < 8 else SUCCESS
        scanned = _RESCAN_EPOCH + (day - 1) * DAY_MS + u1 % DAY_MS
        if status == FAILED:
            return base._replace(scan_status=status, latest_scan_time=scanned, failure=0)
        before = base.vul_num if base.scan_status == SUCCESS else 0
        vul = max(0, before + (u2 % 41) - 10) if u2 >> 60 else 0
        malicious = base.malicious_file_num + (1 if (u3 % 100) < 2 else 0)
        return base._replace(
            scan_status=status,
            latest_scan_time=scanned,
            vul_num=vul,
            malicious_file_num=malicious,
            unsafe_setting_num=(u3 >> 8) % 12,
            component_num=base.component_num or 20 + (u3 >> 16) % 600,
            severity=severity_of(vul, malicious),
            failure=-1,
        )

    return revised
