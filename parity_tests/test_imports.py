"""Import boundaries: each package loads in a fresh interpreter without the others."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "rmsnorm_core": ("torch", "jax", "flax"),
    "rmsnorm_torch": ("jax", "flax"),
    "rmsnorm_flax": ("torch",),
    "rmsnorm_flax.linen": ("torch",),
    "rmsnorm_flax.nnx": ("torch",),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_without_forbidden_frameworks(package):
    code = (
        f"import sys, importlib\nimportlib.import_module({package!r})\n"
        f"bad = [m for m in {FORBIDDEN[package]!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{package} imported {out.stdout.strip()}"
