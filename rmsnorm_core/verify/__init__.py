"""Tooling: ``rmsnorm verify`` (the run over runners x cases, its records, table and baseline)."""
