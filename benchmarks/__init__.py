"""Ratio benchmarks: each candidate timed against a peer in the same process.

Run every registered benchmark with ``python -m benchmarks`` (see ``--help``).
Benchmark modules are ``benchmarks/bench_*.py``; each registers its cases with
:func:`benchmarks._harness.register`.
"""
