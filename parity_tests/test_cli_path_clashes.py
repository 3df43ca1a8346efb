"""Every command's outputs are checked against its inputs and each other before it runs.

A clash (one path, a symlink, a hard link, a folder holding the other file) is
refused with one line naming both parameters, exit 2, and nothing run or written:
each test makes "anything ran" fail loudly and compares the folder byte for byte.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from rmsnorm_core import RMSNormSpec, neutral_layer, save
from rmsnorm_core.cli import _cli_docs
from rmsnorm_core.cli._cli import build_parser, main
from rmsnorm_core.cli._cli_paths import CommandPaths


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A spec, a checkpoint and a baseline, a hard link and a symlink to the spec; the
    work of verify and bench replaced by a failure (a refused command never gets there)."""
    from rmsnorm_core.cli import _cli_bench
    from rmsnorm_core.verify import _baseline, _verify

    def ran(*args, **kwargs):
        raise AssertionError("the command ran")

    for module, name in [
        (_verify, "problems_for"),
        (_verify, "problems_for_weights"),
        (_baseline, "load_report"),
        (_cli_bench, "collect"),
    ]:
        monkeypatch.setattr(module, name, ran)
    spec = RMSNormSpec.preset("llama")
    (tmp_path / "s.json").write_text(spec.to_json())
    scale = np.linspace(0.5, 1.5, 8, dtype=np.float32)
    save(tmp_path / "n.safetensors", {"norm": neutral_layer("norm", spec, scale, None)})
    (tmp_path / "base.json").write_text("{}")
    os.link(tmp_path / "s.json", tmp_path / "hard.json")
    os.symlink(tmp_path / "s.json", tmp_path / "soft.json")
    os.link(tmp_path / "n.safetensors", tmp_path / "hard.safetensors")
    monkeypatch.chdir(tmp_path)
    return tmp_path


CLASHES = [
    (
        ["verify", "--weights", "n.safetensors", "--report", "n.safetensors"],
        "--report",
        "--weights",
    ),
    (["verify", "--spec", "s.json", "--report", "s.json"], "--report", "--spec"),
    (["verify", "--spec", "s.json", "--report", "hard.json"], "--report", "--spec"),
    (["verify", "--spec", "s.json", "--report", "soft.json"], "--report", "--spec"),
    (["verify", "--spec", "hard.json", "--report", "./s.json"], "--report", "--spec"),
    (
        ["verify", "--spec", "s.json", "--baseline", "base.json", "--diff", "s.json"],
        "--diff",
        "--spec",
    ),
    (
        ["verify", "--spec", "s.json", "--baseline", "base.json", "--report", "base.json"],
        "--report",
        "--baseline",
    ),
    (
        [
            "verify",
            "--spec",
            "s.json",
            "--baseline",
            "base.json",
            "--report",
            "r.json",
            "--diff",
            "r.json",
        ],
        "--diff",
        "--report",
    ),  # fmt: skip
    (["convert", "n.safetensors", "hard.safetensors"], "DST", "SRC"),
    (["convert", "n.safetensors", "."], "DST", "SRC"),
    (["bench", "--json", "p/ratios.png", "--plots", "p"], "--plots ratios.png", "--json"),
]
IDS = [
    "verify-report-is-weights",
    "verify-report-is-spec",
    "verify-report-hard-link-to-spec",
    "verify-report-symlink-to-spec",
    "verify-spec-hard-link-report",
    "verify-diff-is-spec",
    "verify-report-is-baseline",
    "verify-diff-is-report",
    "convert-dst-hard-link-to-src",
    "convert-dst-folder-holds-src",
    "bench-json-is-a-plot",
]


@pytest.mark.parametrize(("argv", "output", "other"), CLASHES, ids=IDS)
def test_a_clash_is_refused_before_anything_runs(files, capsys, argv, output, other):
    before = _snapshot(files)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    # both parameters named, in either order
    assert f"{output} '" in err and f"{other} '" in err, err
    assert ("is the same file as" in err) or ("is a folder that holds" in err), err
    assert _snapshot(files) == before
    assert not (files / "p").exists() and not (files / "r.json").exists()


def test_docs_build_over_the_source_tree_is_refused(capsys, monkeypatch):
    def built(*args, **kwargs):
        raise AssertionError("mkdocs ran")

    monkeypatch.setattr(_cli_docs.subprocess, "run", built)
    assert main(["docs", "--build", str(_cli_docs.SOURCE)]) == 2
    err = capsys.readouterr().err
    assert "--build" in err and "is a folder that holds the docs source" in err


def test_separate_paths_are_accepted(files):
    from rmsnorm_core.cli._cli_paths import refuse_collisions

    refuse_collisions(
        {"--spec": files / "s.json", "--baseline": files / "base.json"},
        {"--report": files / "r.json", "--diff": files / "d.json", "--unused": None},
    )
    # one character device under two names (a terminal's stdout and stderr): nothing replaced
    refuse_collisions({"--spec": os.devnull}, {"--report": os.devnull, "--diff": os.devnull})


def _subcommands(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_declares_the_files_it_reads_and_writes():
    """A new command registered without ``paths=`` fails here (and in ``main``)."""
    commands = _subcommands(build_parser(with_backends=True))
    assert {"verify", "convert", "export", "bench", "docs"} <= set(commands)
    for name, sub in commands.items():
        declared = sub.get_default("paths")
        assert callable(declared), f"rmsnorm {name} declares no paths"
        needed = {a.dest for a in sub._actions if a.required and a.dest != "help"}
        args = sub.parse_args([f"x{i}" for i, _ in enumerate(needed)])
        assert isinstance(declared(args), CommandPaths), name


def test_export_refuses_a_per_layer_artifact_over_its_input(tmp_path, capsys):
    """A two-layer checkpoint gets ``OUT.<layer>.pt`` per layer: known only once the
    checkpoint is read, and checked then, before anything is exported."""
    pytest.importorskip("torch")
    spec = RMSNormSpec.preset("llama")
    scale = np.linspace(0.5, 1.5, 8, dtype=np.float32)
    layers = {n: neutral_layer(n, spec, scale, None) for n in ("a", "b")}
    save(tmp_path / "m.a.pt", layers)
    before = _snapshot(tmp_path)
    assert main(["export", str(tmp_path / "m.a.pt"), "--torchscript", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "--torchscript (layer 'a')" in err and "is the same file as CHECKPOINT" in err
    assert _snapshot(tmp_path) == before
