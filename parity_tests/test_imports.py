"""Import boundaries: each package loads in a fresh interpreter without the others."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = {
    # ml_dtypes loads on the first bfloat16 array (spec/_dtypes.numpy_dtype): 1.1-1.3 s
    # per process with ml_dtypes 0.7.0 here
    "rmsnorm_core": ("torch", "jax", "flax", "ml_dtypes"),
    "rmsnorm_flax": ("torch",),
    "rmsnorm_flax.linen": ("torch",),
    "rmsnorm_flax.nnx": ("torch",),
    # registering a backend (every command that lists them does) imports no framework
    "rmsnorm_torch": ("torch", "jax", "flax", "ml_dtypes"),
    "rmsnorm_torch.plugins._plugin": ("torch", "jax", "flax"),
    "rmsnorm_flax.plugins._plugin": ("torch", "jax", "flax"),
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files(package: str) -> list[Path]:
    """Every module of ``package``, its subpackages' included."""
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules ``path`` imports (relative imports resolved), at any depth."""
    me = _module_name(path)
    here = me if path.stem == "__init__" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != me}


def _graph() -> dict[str, set[str]]:
    paths = [p for package in PACKAGES for p in _files(package)]
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def test_the_graph_sees_every_module():
    """The checks below walk subpackages: a module moved into one is still checked."""
    graph = _graph()
    assert "rmsnorm_core.spec._rules" in graph and "rmsnorm_torch.nn._modules" in graph
    assert (
        "rmsnorm_core.spec._rules"
        in graph["rmsnorm_torch.kernels._resolve"] | graph["rmsnorm_core.rules"]
    )


def test_core_names_no_backend_package():
    # not even in documentation: core finds backends by entry point only
    for path in _files("rmsnorm_core"):
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
    inits = {
        _module_name(p) for package in PACKAGES for p in _files(package) if p.stem == "__init__"
    }
    edges = {k: {d for d in v if d not in inits} for k, v in graph.items() if k not in inits}
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
        "_distributed_runner.py",
        "_benchmarks.py",
        "_benchmarks_gpu.py",
        "_infer.py",  # each package's infer_spec (core: the neutral prober)
        "_upstream.py",  # each backend's upstream runners (verify's bit rows)
    }
    names = [p.name for package in PACKAGES for p in _files(package)]
    repeated = {n for n in names if names.count(n) > 1} - same_role
    assert not repeated, repeated


LAZY_COMMANDS = {
    # command -> frameworks it must not import
    "spec": ("torch", "jax", "flax", "ml_dtypes"),
    "presets": ("torch", "jax", "flax", "ml_dtypes"),
    "convert-pt": ("jax", "flax"),
    "convert-msgpack": ("torch",),
}


@pytest.mark.parametrize("command", sorted(LAZY_COMMANDS))
def test_commands_import_only_the_frameworks_they_touch(command, tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"model.norm.weight": torch.ones(8)}, tmp_path / "m.pt")
    if command == "convert-msgpack":  # written here; the command's process reads it
        pytest.importorskip("flax")
        from rmsnorm_core.cli._cli import main

        paths = [str(tmp_path / "m.pt"), str(tmp_path / "m.msgpack")]
        assert main(["convert", *paths, "--preset", "llama"]) == 0
    argv = {
        "spec": ["spec", "llama"],
        "presets": ["presets"],
        "convert-pt": [
            "convert",
            str(tmp_path / "m.pt"),
            str(tmp_path / "o.safetensors"),
            "--preset",
            "llama",
        ],
        "convert-msgpack": [
            "convert",
            str(tmp_path / "m.msgpack"),
            str(tmp_path / "o.safetensors"),
            "--preset",
            "llama",
        ],
    }[command]
    code = (
        "import sys\nfrom rmsnorm_core.cli._cli import main\n"
        f"code = main({argv!r})\n"
        f"bad = [m for m in {LAZY_COMMANDS[command]!r} if m in sys.modules]\n"
        "print('RESULT', code, ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")][-1]
    assert line == "RESULT 0 ", f"{command}: {line!r} (exit code, then frameworks imported)"
