"""Import boundaries: each package loads in a fresh interpreter without the others."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

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


PACKAGES = ("rmsnorm_core", "rmsnorm_torch", "rmsnorm_flax")
ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path, package: str) -> set[str]:
    """Project modules ``path`` imports (relative imports resolved), at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    modules = {f"{p}.{m.stem}" for p in PACKAGES for m in (ROOT / p).glob("*.py")}
    modules |= set(PACKAGES)
    return {m for m in found if m in modules and m != f"{package}.{path.stem}"}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            graph[name] = _imports(path, package)
    return graph


def test_core_names_no_backend_package():
    # not even in documentation: core finds backends by entry point only
    for path in (ROOT / "rmsnorm_core").glob("*.py"):
        hits = [
            line
            for line in path.read_text().splitlines()
            if re.search(r"rmsnorm_(torch|flax)", line)
        ]
        assert not hits, f"{path.name}: {hits}"
    core_deps = {m for k, deps in _graph().items() if k.startswith("rmsnorm_core") for m in deps}
    assert not {m for m in core_deps if m.startswith(("rmsnorm_torch", "rmsnorm_flax"))}


def test_no_import_cycle_between_modules():
    full = _graph()
    graph = {k: {d for d in v if d in full} for k, v in full.items()}
    # a package's __init__ re-exports its modules; cycles through it are the
    # normal "from . import x" shape, so only module-to-module edges count
    edges = {k: {d for d in v if d not in PACKAGES} for k, v in graph.items() if k not in PACKAGES}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for dep in edges.get(node, ()):
            if state.get(dep) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, node, dep])}")
            if not state.get(dep):
                visit(dep, [*stack, node])
        state[node] = 2

    for node in edges:
        if not state.get(node):
            visit(node, [])


def test_no_two_files_of_one_name_mean_different_things():
    # the same name in two packages is allowed only for the same role
    same_role = {
        "__init__.py",
        "_functional.py",
        "_bridge.py",
        "_plugin.py",
        "_verify_runners.py",
        "_distributed.py",
        "_benchmarks.py",
        "_benchmarks_gpu.py",
        "_infer.py",  # each package's infer_spec (core: the neutral prober)
    }
    names = [p.name for package in PACKAGES for p in (ROOT / package).glob("*.py")]
    repeated = {n for n in names if names.count(n) > 1} - same_role
    assert not repeated, repeated
