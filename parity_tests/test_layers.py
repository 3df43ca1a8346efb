"""Layering: subpackages import one way, and the library never loads the tools beside it."""

from __future__ import annotations

import subprocess
import sys

from test_imports import _graph

# rmsnorm_core's library: what ``import rmsnorm_core`` loads and a backend's layers use
CORE_LIBRARY = ("spec", "oracle", "io", "_lazy", "_install", "reference", "rules")
# the tools beside it, each loaded by the command (or the name) that uses it
CORE_TOOLS = ("parity", "infer", "bench", "registry", "verify", "cli", "testing", "backends")


def _package(module: str) -> str:
    """``pkg.sub`` for any module at or below ``pkg.sub``; ``pkg`` for the package itself."""
    return ".".join(module.split(".")[:2])


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        if "." not in module:  # a package's own __init__ re-exports its subpackages
            continue
        for dep in deps:
            if "." in dep and _package(dep) != _package(module):
                edges.setdefault(_package(module), set()).add(_package(dep))
    return edges


def test_no_import_cycle_between_subpackages():
    edges = _package_edges()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            assert state.get(dep) != 1, f"package cycle: {' -> '.join([*stack, node, dep])}"
            if not state.get(dep):
                visit(dep, [*stack, node])
        state[node] = 2

    for node in sorted(edges):
        if not state.get(node):
            visit(node, [])


def test_the_cycle_check_sees_a_planted_cycle(monkeypatch):
    """The check above can fail: plant spec -> verify (verify already reaches spec)."""
    import test_layers

    planted = _package_edges()
    planted.setdefault("rmsnorm_core.spec", set()).add("rmsnorm_core.verify")
    monkeypatch.setattr(test_layers, "_package_edges", lambda: planted)
    try:
        test_layers.test_no_import_cycle_between_subpackages()
    except AssertionError as e:
        assert "rmsnorm_core.spec" in str(e) and "rmsnorm_core.verify" in str(e)
    else:
        raise AssertionError("a planted package cycle was not reported")


def test_core_library_imports_no_tool():
    tools = {f"rmsnorm_core.{t}" for t in CORE_TOOLS}
    for module, deps in _graph().items():
        if _package(module) in {f"rmsnorm_core.{lib}" for lib in CORE_LIBRARY}:
            assert not {_package(d) for d in deps} & tools, (module, sorted(deps))


def test_backend_layers_import_no_core_tool():
    """Only a backend's ``plugins`` (its verify runners, benchmarks, exporters) use the tools."""
    tools = {f"rmsnorm_core.{t}" for t in CORE_TOOLS}
    for module, deps in _graph().items():
        if module.startswith(("rmsnorm_torch", "rmsnorm_flax")) and ".plugins" not in module:
            assert not {_package(d) for d in deps} & tools, (module, sorted(deps))


def test_importing_the_packages_loads_no_tool():
    code = (
        "import sys, rmsnorm_core, rmsnorm_torch, rmsnorm_flax\n"
        f"tools = tuple('rmsnorm_core.' + t for t in {CORE_TOOLS!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith(tools)))\n"
        "from rmsnorm_core import infer_spec, testing, backends\n"
        "print(callable(infer_spec), testing.CASES is not None, callable(backends.backends))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "True True True"], out.stdout + out.stderr
