"""Benchmarks of the CCM against the real kube-apiserver and the fake XO server.

``python -m tools.bench.run`` (``scripts/bench``) runs them and writes a table
and a JSON file; ``tests/bench/test_bench_counts.py`` runs the same code at a tiny size
in the test suite, asserting request counts only (never timings).
"""
