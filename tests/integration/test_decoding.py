"""The simulator's pages, fetched over a real socket, decode on the typed path."""

from __future__ import annotations

import orjson

from connector.shape.schema import load_spec
from connector.source.decoding import PageDecoder, as_row

SPEC = load_spec()
NAMES = [f.name for f in SPEC.api_fields]
DECODER = PageDecoder(SPEC)


def test_the_simulators_pages_take_the_typed_path() -> None:
    """Its records are what the reference describes: every page decodes typed (else the
    benchmarks would measure the general path)."""
    import urllib.request

    from connector.simulator import SimulatorConfig, simulator_in_thread

    with simulator_in_thread(SimulatorConfig(records=450, tokens=frozenset({"t"}))) as sim:
        for offset in (0, 200, 400):
            url = f"{sim.base_url}/v5/p1/image/local-repositories?offset={offset}&limit=200"
            request = urllib.request.Request(url, headers={"X-Auth-Token": "t"})
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
            decoded = DECODER.decode(body)
            assert decoded is not None
            plain = orjson.loads(body)["data_list"]
            assert [as_row(t) for t in decoded.records] == [
                tuple(r.get(name) for name in NAMES) for r in plain
            ]
