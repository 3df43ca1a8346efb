"""Where ``rmsnorm export`` writes each layer's artifact: one rule, shared by the command
(which checks the paths before exporting) and every exporter (which writes them)."""

from __future__ import annotations

from pathlib import Path


def artifact_path(base: Path, layer: str, count: int) -> Path:
    """Where an exporter writes one layer's artifact: ``base`` itself for a one-layer
    checkpoint, else ``<stem>.<layer><suffix>`` beside it. ``rmsnorm export`` checks
    these paths against its input and each other before anything is exported."""
    return base if count == 1 else base.with_name(f"{base.stem}.{layer}{base.suffix}")
