"""Tooling: the ``rmsnorm`` command and its subcommands."""
