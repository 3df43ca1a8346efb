"""Print pip constraints that pin every declared dependency to its lower bound.

Reads pyproject.toml: each ``name>=X`` of the dependencies and optional
dependencies becomes ``name==X`` (extras dropped: ``mkdocstrings[python]>=0.26``
pins ``mkdocstrings==0.26``); ``jaxlib`` follows ``jax``. torch is left out: the
one local CPU build is installed first. ``--check`` instead compares what is
installed with those floors and exits 1 on a difference, so a run at the floors
cannot silently test something newer.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOUND = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9][^,;\s]*)$")


def floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += [s for s in extra if not s.startswith(project["name"])]
    out = {}
    for spec in specs:
        match = BOUND.match(spec.replace(" ", ""))
        if match is None:
            raise SystemExit(f"{spec!r}: every dependency must declare a lower bound (>=)")
        name, version = match.group(1).lower().replace("_", "-"), match.group(2)
        if name != "torch":
            out[name] = version
    if "jax" in out:
        out["jaxlib"] = out["jax"]
    return out


def main() -> int:
    pins = floors()

    if sys.argv[1:] != ["--check"]:
        print("\n".join(f"{name}=={version}" for name, version in sorted(pins.items())))
        return 0
    from packaging.version import Version  # only --check needs it (installed with [test])

    wrong = []
    for name, version in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed == "not installed" or Version(installed) != Version(version):
            wrong.append(f"{name}: {installed} installed, floor {version}")
    print("\n".join(wrong) or f"all {len(pins)} dependencies at their declared floors")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
