"""Deterministic record generation: record = f(seed, project_id, key), computed on demand.

A project's records are identified by integer keys (0..n-1 initially; drift adds more).
Every attribute is drawn from a BLAKE2b hash of (seed, project_id, key), so a page is
generated in microseconds per record and nothing is built up front. The enterprise project
of each key comes from one SHAKE-256 stream per project instead, so that filtering a
million keys by enterprise project runs at C speed.

With ``shared_image_rate`` > 0, keys fall in blocks of ``min(64, host_count)``: the first
key of a block shows its own image; any other key, if drawn, shows the image of the nearest
earlier key of its block that shows its own, on the host ``d`` places after that key's
(``d`` the distance between the keys, less than the block and so than the host pool). The
records showing one image are therefore on distinct hosts, and the natural key (image_id,
image_digest, image_name, image_version, host_id, agent_id) stays unique. The draw rate is
scaled so that about ``shared_image_rate`` of all keys show another's image (at most all
but the first of each block).

Two alterations serve the rows ``SimulatorConfig`` describes: keys in ``no_update_time``
have no ``latest_update_time`` (stored as 0, which no time range matches), and a key in
``conflicts`` (key -> source key) is a copy of its source with one more vulnerability:
the same image on the same host, so the same natural key, in the same enterprise project,
with the same hidden attributes and data faults.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from connector.simulator.vocabulary import (
    APPS,
    CONTAINER_SERVICES,
    ENTERPRISE_PROJECT_IDS,
    HOST_PATTERNS,
    IMAGE_NAMES,
    IMAGE_VERSIONS,
    LOCAL_IMAGE_TYPES,
    NON_SCAN_REASONS,
    SCAN_FAILED_DESCS,
    SCAN_STATUSES,
    SEVERITY_LEVELS,
)

__all__ = ["Core", "Hidden", "Host", "ProjectGenerator", "Record"]

Record = dict[str, Any]
"""A record as served: a JSON-able dict."""

_U64X8 = struct.Struct("<8Q")
_P_CORE = b"hss-sim-core"
_P_IDS = b"hss-sim-ids"
_P_HOST = b"hss-sim-host"
_P_HIDDEN = b"hss-sim-hidden"
_P_FAULTS = b"hss-sim-faults"
_P_SHARE = b"hss-sim-share"
_P_DAY = b"hss-sim-day"
_SHARE_BLOCK = 64  # keys that may show one image (if the host pool is that large)

UNSCAN, SUCCESS, SCANNING, FAILED, WAITING = range(len(SCAN_STATUSES))


def _epoch_ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000


UPDATE_START = _epoch_ms(2022, 1, 1)
UPDATE_SPAN = _epoch_ms(2026, 7, 1) - UPDATE_START
SCAN_END = _epoch_ms(2027, 1, 1) - 1
_SCAN_DELAY_SPAN = 200 * 86_400_000
_HUGE_MIN = 2**32 + 1
_HUGE_MAX = 20_000_000_000
_MIB = 1 << 20

# Enterprise project of a key: stream byte -> code (about 85% "0", 10%, 5%).
_EP_TABLE = bytes(0 if b < 218 else 1 if b < 243 else 2 for b in range(256))
assert len(ENTERPRISE_PROJECT_IDS) == 3


_UUID_VARIANT = "89ab" * 4


def _uuid(raw: bytes) -> str:
    """A version-4-shaped UUID string from the first 16 bytes of ``raw``."""
    h = raw[:16].hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[raw[8] >> 4]}{h[17:20]}-{h[20:]}"


class Core(NamedTuple):
    """The scalar attributes of one record (a tuple: this is on the hot path).

    ``latest_scan_time`` is 0 for never-scanned images; ``severity`` and ``failure`` are
    indexes into their vocabularies, -1 when absent; ``variant`` holds spare random bits
    that choose between equivalent serialisations. ``image_key`` is the key whose image
    (``image_id``, digest) the record shows: its own, or another's for a shared image.
    """

    key: int
    image_name: str
    image_version: str
    local_image_type: int
    scan_status: int
    image_size: int
    latest_update_time: int
    latest_scan_time: int
    vul_num: int
    unsafe_setting_num: int
    malicious_file_num: int
    host_num: int
    container_num: int
    component_num: int
    host: int
    severity: int
    failure: int
    variant: int
    image_key: int


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    host_id: str
    ip: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Hidden:
    """Attributes filters match but the API does not return."""

    enterprise_project_id: str
    host_ip: str
    container_ids: tuple[str, ...]
    container_names: tuple[str, ...]
    pod_ids: tuple[str, ...]
    pod_names: tuple[str, ...]
    apps: tuple[str, ...]

    @property
    def has_container(self) -> bool:
        return bool(self.container_ids)


def severity_of(vul_num: int, malicious: int) -> int:
    """The severity index of a scanned image with these counts."""
    if malicious or vul_num > 100:
        return 3
    if vul_num == 0:
        return 0
    return 1 if vul_num < 10 else 2


class ProjectGenerator:
    """Generates the records of one project; caches only its (small) host pool."""

    core: Callable[[int], Core]
    """The scalar attributes of a key (with its shared image, if it shows one)."""

    def __init__(
        self,
        seed: int,
        project_id: str,
        initial_count: int,
        shared_image_rate: float = 0.0,
        *,
        no_update_time: frozenset[int] = frozenset(),
        conflicts: Mapping[int, int] | None = None,
    ) -> None:
        self.project_id = project_id
        self._prefix = f"{seed}\x00{project_id}\x00".encode()
        self.host_count = max(1, min(20_000, initial_count // 25))
        self._hosts: dict[int, Host] = {}
        self._ep_stream = b""
        # Hash states with the prefix already absorbed: copying one beats building one.
        self._hashers = {
            person: hashlib.blake2b(self._prefix, digest_size=64, person=person)
            for person in (_P_CORE, _P_IDS, _P_HOST, _P_HIDDEN, _P_FAULTS, _P_SHARE, _P_DAY)
        }
        block = self._share_block = min(_SHARE_BLOCK, self.host_count)
        sharing = shared_image_rate > 0 and block > 1
        rate = min(1.0, shared_image_rate * block / (block - 1)) if sharing else 0.0
        self._share_threshold = int(rate * 2**64)  # of a 64-bit draw
        self._base_core = self._shared_core if sharing else self._own_core
        self.core = self._base_core
        self.sharing = sharing
        self._no_update_time = no_update_time
        self._conflicts: Mapping[int, int] = conflicts or {}
        if no_update_time or self._conflicts:
            self.core = self._altered_core

    def day_digest(self, key: int, day: int) -> bytes:
        """32 seeded bytes of ``key``'s rescan on ``day`` (``days``)."""
        return self._digest(key * 100_003 + day, _P_DAY)[:32]

    def revise(self, core: Callable[[int], Core]) -> None:
        """Serve ``core`` from now on (the inventory of a later day, ``days``)."""
        self.core = core

    def source(self, key: int) -> int:
        """The key whose record ``key`` copies (a conflicting row's source), else ``key``."""
        return self._conflicts.get(key, key)

    def _altered_core(self, key: int) -> Core:
        source = self._conflicts.get(key)
        if source is None:
            core = self._base_core(key)
        else:
            core = self._base_core(source)
            core = core._replace(key=key, vul_num=core.vul_num + 1)
        if (key if source is None else source) in self._no_update_time:
            core = core._replace(latest_update_time=0)
        return core

    def _digest(self, key: int, person: bytes) -> bytes:
        """64 bytes of BLAKE2b(seed, project_id, key), domain-separated by ``person``."""
        hasher = self._hashers[person].copy()
        hasher.update(b"%d" % key)
        return hasher.digest()

    def _own_core(self, key: int) -> Core:
        u0, u1, u2, u3, u4, u5, u6, u7 = _U64X8.unpack(self._digest(key, _P_CORE))
        name, image_type = IMAGE_NAMES[u0 % len(IMAGE_NAMES)]
        draw = u1 % 100
        if draw < 55:
            status = SUCCESS
        elif draw < 75:
            status = UNSCAN
        elif draw < 87:
            status = WAITING
        elif draw < 95:
            status = FAILED
        else:
            status = SCANNING
        if u2 % 100 < 6:
            size = _HUGE_MIN + (u2 >> 8) % (_HUGE_MAX - _HUGE_MIN)
        else:
            size = (2 + (u2 >> 8) % 2000) * _MIB + (u2 >> 40) % _MIB
        updated = UPDATE_START + u3 % UPDATE_SPAN
        scanned = 0
        if status in (SUCCESS, FAILED):
            scanned = min(updated + 60_000 + u4 % _SCAN_DELAY_SPAN, SCAN_END)
        vul = unsafe = malicious = components = 0
        severity = failure = -1
        if status == SUCCESS:
            vul = 0 if u5 % 100 < 40 else 1 + (u5 >> 8) % 250
            unsafe = (u5 >> 24) % 12
            malicious = 1 + (u5 >> 32) % 3 if (u5 >> 40) % 100 < 3 else 0
            components = 20 + u7 % 600
            severity = severity_of(vul, malicious)
        elif status == FAILED:
            failure = (u1 >> 16) % len(SCAN_FAILED_DESCS)
        host_num = 0 if (u6 >> 16) % 100 < 10 else 1 + (u6 >> 24) % 4
        containers = 0 if (u6 >> 32) % 100 < 45 else 1 + (u6 >> 40) % 12
        return Core(
            key,
            name,
            IMAGE_VERSIONS[(u0 >> 32) % len(IMAGE_VERSIONS)],
            image_type,
            status,
            size,
            updated,
            scanned,
            vul,
            unsafe,
            malicious,
            host_num,
            containers,
            components,
            u6 % self.host_count,
            severity,
            failure,
            u1 >> 32,
            key,
        )

    def _draws_shared(self, key: int) -> bool:
        return int.from_bytes(self._digest(key, _P_SHARE)[:8], "little") < self._share_threshold

    def _shared_core(self, key: int) -> Core:
        first = key - key % self._share_block
        if key == first or not self._draws_shared(key):
            return self._own_core(key)
        source = key - 1
        while source > first and self._draws_shared(source):
            source -= 1
        image = self._own_core(source)
        distance = key - source
        count, host = self.host_count, self.host
        name = host((image.host + distance) % count).name
        if any(host((image.host + d) % count).name == name for d in range(distance)):
            return self._own_core(key)  # a host name drawn twice: keep to an image of its own
        return image._replace(key=key, host=(image.host + distance) % count)

    def image_key(self, key: int) -> int:
        """The key whose image ``key`` shows: its own, or an earlier key's (shared image)."""
        return self.core(key).image_key if self.sharing else self.source(key)

    def host(self, index: int) -> Host:
        host = self._hosts.get(index)
        if host is None:
            d = self._digest(index, _P_HOST)
            pattern = HOST_PATTERNS[d[0] % len(HOST_PATTERNS)]
            kind = d[19] % 3
            last = 1 + d[22] % 254
            if kind == 0:
                ip = f"192.168.{d[20]}.{last}"
            elif kind == 1:
                ip = f"10.{d[20]}.{d[21]}.{last}"
            else:
                ip = f"172.{16 + d[20] % 16}.{d[21]}.{last}"
            host = Host(
                name=pattern.format(n=index + 1, x=d[1:3].hex()),
                host_id=_uuid(d[3:19]),
                ip=ip,
                agent_id=d[32:64].hex(),
            )
            self._hosts[index] = host
        return host

    def image_id(self, key: int) -> str:
        """The ``image_id`` of a key, the same as in :meth:`record`."""
        return _uuid(self._digest(self.image_key(key), _P_IDS))

    def record(self, core: Core) -> Record:
        """The fault-free record as the API returns it (fields absent where it omits them)."""
        ids = self._digest(core.image_key, _P_IDS)
        host = self.host(core.host)
        record: Record = {
            "image_name": core.image_name,
            "image_id": _uuid(ids),
            "image_digest": "sha256:" + ids[16:48].hex(),
            "image_version": core.image_version,
            "local_image_type": LOCAL_IMAGE_TYPES[core.local_image_type],
            "scan_status": SCAN_STATUSES[core.scan_status],
            "image_size": core.image_size,
        }
        if core.latest_update_time:  # 0: a record served without it
            record["latest_update_time"] = core.latest_update_time
        variant = core.variant
        if core.latest_scan_time:
            record["latest_scan_time"] = core.latest_scan_time
        elif variant & 1:
            record["latest_scan_time"] = 0
        record["vul_num"] = core.vul_num
        record["unsafe_setting_num"] = core.unsafe_setting_num
        record["malicious_file_num"] = core.malicious_file_num
        record["host_num"] = core.host_num
        record["container_num"] = core.container_num
        record["component_num"] = core.component_num
        record["scan_failed_desc"] = SCAN_FAILED_DESCS[core.failure] if core.failure >= 0 else ""
        if core.severity >= 0:
            record["severity_level"] = SEVERITY_LEVELS[core.severity]
        record["host_name"] = host.name
        record["host_id"] = host.host_id
        record["agent_id"] = host.agent_id
        reason_draw = (variant >> 1) % 100
        if core.scan_status == UNSCAN and reason_draw < 50:
            record["non_scan_reason"] = NON_SCAN_REASONS[(variant >> 8) % len(NON_SCAN_REASONS)]
        elif reason_draw >= 80:
            record["non_scan_reason"] = ""
        return record

    def hidden(self, key: int) -> Hidden:
        key = self.source(key)
        core = self.core(key)
        rng = random.Random(self._digest(key, _P_HIDDEN))
        container_ids: list[str] = []
        container_names: list[str] = []
        pod_ids: list[str] = []
        pod_names: list[str] = []
        for index in range(core.container_num):
            service = rng.choice(CONTAINER_SERVICES)
            container_ids.append(f"{rng.getrandbits(256):064x}")
            if rng.random() < 0.7:
                pod_name = f"{service}-{rng.getrandbits(40):010x}-{rng.getrandbits(20):05x}"
                pod_id = _uuid(rng.getrandbits(128).to_bytes(16, "big"))
                pod_names.append(pod_name)
                pod_ids.append(pod_id)
                container_names.append(f"k8s_{service}_{pod_name}_default_{pod_id[:8]}_0")
            else:
                container_names.append(f"{service}-{index + 1}")
        apps: tuple[str, ...] = ()
        if core.scan_status == SUCCESS:
            apps = tuple(sorted(rng.sample(APPS, k=3 + rng.randrange(6))))
        return Hidden(
            enterprise_project_id=ENTERPRISE_PROJECT_IDS[self.ep_code(key)],
            host_ip=self.host(core.host).ip,
            container_ids=tuple(container_ids),
            container_names=tuple(container_names),
            pod_ids=tuple(pod_ids),
            pod_names=tuple(pod_names),
            apps=apps,
        )

    def fault_material(self, key: int) -> bytes:
        """64 bytes that decide the data faults of one record."""
        return self._digest(self.source(key), _P_FAULTS)

    def _ep_bytes(self, size: int) -> bytes:
        if len(self._ep_stream) < size:
            # SHAKE output is prefix-stable, so extending the stream keeps earlier bytes.
            length = max(size, 2 * len(self._ep_stream), 1024)
            self._ep_stream = hashlib.shake_256(self._prefix + b"ep").digest(length)
        return self._ep_stream

    def ep_code(self, key: int) -> int:
        key = self.source(key)
        return _EP_TABLE[self._ep_bytes(key + 1)[key]]

    def ep_codes(self, keys: Sequence[int]) -> bytearray:
        """Enterprise-project codes of ``keys`` (index into ENTERPRISE_PROJECT_IDS)."""
        count = len(keys)
        if isinstance(keys, range) and keys.start == 0 and keys.step == 1:
            return bytearray(self._ep_bytes(count)[:count].translate(_EP_TABLE))
        if count == 0:
            return bytearray()
        if self._conflicts:
            keys = [self.source(key) for key in keys]
        stream = self._ep_bytes(max(keys) + 1)
        return bytearray(bytes(stream[k] for k in keys).translate(_EP_TABLE))
