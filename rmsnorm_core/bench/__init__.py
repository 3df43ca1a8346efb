"""Tooling: the ratio-benchmark harness (``rmsnorm bench``), GPU byte model, plots."""
