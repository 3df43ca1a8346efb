"""The install command that adds missing modules: one place, so every skip, hint and
error, the library's and the tools', names the same command (``pip install -e
'.[flax]'``, from the source tree the README installs from). Standard library only:
the library's layers use it as the tools do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import metadata

DISTRIBUTION = "rmsnorm-bridge"

#: ``name>=1.0; extra == "onnx"``: the name and the extra of one requirement line. The
#: lines are this package's own metadata (plain names, one marker); ``packaging``, which
#: parses any requirement, is not a dependency of the core package.
_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*).*;\s*extra\s*==\s*['\"]([\w-]+)['\"]\s*$")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras() -> dict[str, list[str]]:
    """``{extra: [distribution names it installs]}`` from this package's metadata, in the
    order ``pyproject.toml`` lists them; empty where the package is not installed."""
    try:
        lines = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, list[str]] = {}
    for line in lines:
        match = _LINE.match(line)
        if match and _normalized(match.group(1)) != DISTRIBUTION:
            out.setdefault(match.group(2), []).append(_normalized(match.group(1)))
    return out


def install_command(modules: Sequence[str]) -> str:
    """The command that installs ``modules`` (top-level module names, each also its
    distribution's name): the extras that hold them, each with the fewest packages
    (``pip install -e '.[hf]'``), then ``pip install NAME`` for any no extra holds."""
    by_extra = extras()
    chosen: list[str] = []
    loose: list[str] = []
    for module in dict.fromkeys(modules):
        holders = [e for e, names in by_extra.items() if _normalized(module) in names]
        if not holders:
            loose.append(module)
        elif not set(holders) & set(chosen):
            chosen.append(min(holders, key=lambda e: len(by_extra[e])))
    parts = []
    if chosen:
        parts.append(f"pip install -e '.[{','.join(chosen)}]'")
    if loose:
        parts.append(f"pip install {' '.join(loose)}")
    return "; ".join(parts)


_HINT = "; install: "


def not_installed(modules: Sequence[str]) -> str:
    """``not installed (jax, flax); install: pip install -e '.[flax]'``: why a backend
    cannot run, with the command that fixes it (see :func:`split_hint`)."""
    return f"not installed ({', '.join(modules)}){_HINT}{install_command(modules)}"


def needs(modules: Sequence[str]) -> str:
    """``needs onnxruntime; install: pip install -e '.[onnx]'``: why a runner of an
    installed backend cannot run, with the command that fixes it."""
    return f"needs {', '.join(modules)}{_HINT}{install_command(modules)}"


def split_hint(reason: str) -> tuple[str, str]:
    """``(why, install command)`` of a :func:`not_installed` reason; ``(reason, "")`` for
    any other (e.g. an entry point that is not a backend)."""
    why, _, command = reason.partition(_HINT)
    return why, command
