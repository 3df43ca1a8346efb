"""``python -m benchmarks``: the same as ``rmsnorm bench`` (see ``rmsnorm bench --help``).

The cases live with the code they measure: core's in ``rmsnorm_core.cli._cli_bench``,
each backend's in its own ``_benchmarks*.py``, registered through the backend
entry point; the harness (timing, table, JSON, plots) is ``rmsnorm_core.bench._bench``.
"""
