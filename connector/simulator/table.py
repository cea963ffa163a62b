"""One project's records in serving order, with the per-record columns filters read.

The keys are a ``range`` until the first drift turns them into an ``array``. Columns are
parallel to the keys and built lazily: the enterprise-project codes on first use (cheap,
from a hash stream), the other scalar attributes the first time a filter needs one (one
pass over every key). Drift inserts and deletes keep every built column in step, so a
filter evaluated after drift does not rebuild anything. Hidden multi-valued attributes
(containers, pods, apps) are computed per key when a filter asks for them.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, MutableSequence, Sequence
from itertools import compress
from typing import Any, Protocol

from connector.simulator.filters import Attribute, Condition
from connector.simulator.generator import ProjectGenerator

__all__ = ["Table"]

_SCALARS = (
    "image_name",
    "image_version",
    "local_image_type",
    "scan_status",
    "image_size",
    "latest_update_time",
    "latest_scan_time",
    "vul_num",
    "container_num",
    "host",
)
_HOST_FIELDS = {"host_name": "name", "host_id": "host_id", "host_ip": "ip"}
_HIDDEN_FIELDS = frozenset({"container_ids", "container_names", "pod_ids", "pod_names", "apps"})
# translate() table per code: byte == code -> 1, else 0.
_EQUALS_MASKS = [bytes(int(b == code) for b in range(256)) for code in range(256)]


class _Indexable(Protocol):
    def __getitem__(self, index: int, /) -> Any: ...

    def __len__(self) -> int: ...


class _View:
    """A computed column: value i = fn(source[i])."""

    __slots__ = ("_fn", "_source")

    def __init__(self, source: Sequence[int], fn: Callable[[int], Any]) -> None:
        self._source = source
        self._fn = fn

    def __getitem__(self, index: int) -> Any:
        return self._fn(self._source[index])

    def __len__(self) -> int:
        return len(self._source)


def _empty_scalars() -> dict[str, MutableSequence[Any]]:
    return {
        "image_name": [],
        "image_version": [],
        "local_image_type": bytearray(),
        "scan_status": bytearray(),
        "image_size": array("q"),
        "latest_update_time": array("q"),
        "latest_scan_time": array("q"),
        "vul_num": array("q"),
        "container_num": array("q"),
        "host": array("q"),
    }


class Table:
    def __init__(self, generator: ProjectGenerator, keys: range | array[int]) -> None:
        self._generator = generator
        self._keys: range | array[int] = keys
        self._ep: bytearray | None = None
        self._scalars: dict[str, MutableSequence[Any]] | None = None

    @property
    def keys(self) -> Sequence[int]:
        return self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def position(self, key: int) -> int:
        """Where ``key`` currently is (it must be present)."""
        return self._keys.index(key)

    def _ep_codes(self) -> bytearray:
        if self._ep is None:
            self._ep = self._generator.ep_codes(self._keys)
        return self._ep

    def _scalar_columns(self) -> dict[str, MutableSequence[Any]]:
        if self._scalars is None:
            columns = _empty_scalars()
            appenders = [columns[name].append for name in _SCALARS]
            core = self._generator.core
            for key in self._keys:
                values = core(key)
                for append, name in zip(appenders, _SCALARS, strict=True):
                    append(getattr(values, name))
            self._scalars = columns
        return self._scalars

    def column(self, attribute: Attribute) -> _Indexable:
        if attribute == "enterprise_project_id":
            return self._ep_codes()
        if attribute in _HOST_FIELDS:
            host, field = self._generator.host, _HOST_FIELDS[attribute]
            return _View(self._scalar_columns()["host"], lambda i: getattr(host(i), field))
        if attribute in _HIDDEN_FIELDS:
            hidden = self._generator.hidden
            return _View(self._keys, lambda key: getattr(hidden(key), attribute))
        return self._scalar_columns()[attribute]

    def select(self, conditions: Sequence[Condition]) -> Sequence[int]:
        """The keys meeting every condition, in serving order (the keys themselves if none)."""
        if not conditions:
            return self._keys
        positions: array[int] | None = None
        for condition in conditions:
            column = self.column(condition.attribute)
            if positions is None and condition.equals is not None:
                assert isinstance(column, bytearray)
                mask = column.translate(_EQUALS_MASKS[condition.equals])
                positions = array("q", compress(range(len(column)), mask))
            else:
                test = condition.test
                source = range(len(self._keys)) if positions is None else positions
                positions = array("q", [i for i in source if test(column[i])])
        assert positions is not None
        keys = self._keys
        if isinstance(keys, range) and keys.start == 0 and keys.step == 1:
            return positions
        return array("q", map(keys.__getitem__, positions))

    def _mutable_keys(self) -> array[int]:
        if isinstance(self._keys, range):
            self._keys = array("q", self._keys)
        return self._keys

    def insert(self, position: int, key: int) -> None:
        self._mutable_keys().insert(position, key)
        if self._ep is not None:
            self._ep.insert(position, self._generator.ep_code(key))
        if self._scalars is not None:
            values = self._generator.core(key)
            for name in _SCALARS:
                self._scalars[name].insert(position, getattr(values, name))

    def delete(self, position: int) -> int:
        """Remove the key at ``position`` and return it."""
        keys = self._mutable_keys()
        key = keys[position]
        del keys[position]
        if self._ep is not None:
            del self._ep[position]
        if self._scalars is not None:
            for name in _SCALARS:
                del self._scalars[name][position]
        return key
