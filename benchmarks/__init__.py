"""Benchmarks of the connector against the embedded simulator and two peers.

    python -m benchmarks [--quick] [--cases rate,latency,cpu,memory,peers] [--runs N]
                         [--out results.json]

(``./dev bench`` runs exactly that after installing the ``test`` and ``bench`` extras.)
The simulator runs in its own process; every program is measured as a child process of
its own (``os.wait4``: CPU and peak RSS of that process only). See ``benchmarks/README.md``
for the cases, the targets and the results. Never run as a timed test: the test suite
only runs a smoke test at tiny sizes (``tests/benchmarks/test_smoke.py``).
"""
