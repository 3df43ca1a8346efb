"""A Griffe extension for the docs build: Sphinx roles in docstrings become links.

The docstrings write ``:func:`compare``` (it reads well in ``help()``), but
Markdown has no roles: mkdocstrings would print ``:func:`` literally. Here,
when the site is built, each role becomes an autorefs link to the name's
reference entry, ``[`compare`][rmsnorm_core.compare]``, so that
``mkdocs build --strict`` fails on a link that goes nowhere; a role whose
target has no entry (a private helper, a builtin) becomes plain code.

The target is looked up as Python would from where the docstring stands (the
class, then its module, then as an absolute path), and matched to the public
name that is the same object under the same name.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|data|mod|attr|exc|obj):`(~?)([\w.]+)`")
REFERENCE = Path(__file__).resolve().parent / "docs" / "reference"
_MISSING = object()


def rendered_modules() -> list[str]:
    """The modules a reference page renders with a ``::: module`` block, in page order."""
    found = []
    for page in sorted(REFERENCE.glob("*.md")):
        for name in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M):
            try:
                importlib.import_module(name)
            except ImportError:
                continue  # a class or a constant, not a module
            found.append(name)
    return found


def public_paths() -> dict[tuple[int, str], str]:
    """``{(id(object), name): its reference path}`` for every rendered name; the first
    module to export an object names it."""
    paths: dict[tuple[int, str], str] = {}
    for module in rendered_modules():
        mod = importlib.import_module(module)
        paths.setdefault((id(mod), module.rsplit(".", 1)[-1]), module)
        for name in mod.__all__:
            obj = getattr(mod, name)
            paths.setdefault((id(obj), name), f"{module}.{name}")
            if inspect.isclass(obj) and obj.__module__.startswith("rmsnorm_"):
                for key, member in vars(obj).items():
                    if not key.startswith("_"):
                        paths.setdefault((id(member), key), f"{module}.{name}.{key}")
    return paths


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _lookup(scopes: list[Any], dotted: str) -> Any:
    head, *rest = dotted.split(".")
    for scope in scopes:
        found = inspect.getattr_static(scope, head, _MISSING)
        if found is not _MISSING:
            break
    else:
        try:
            found = importlib.import_module(head)
        except ImportError:
            return _MISSING
    for part in rest:
        nxt = inspect.getattr_static(found, part, _MISSING)
        if nxt is _MISSING and inspect.ismodule(found):
            try:
                nxt = importlib.import_module(f"{found.__name__}.{part}")
            except ImportError:
                return _MISSING
        found = nxt
        if found is _MISSING:
            return _MISSING
    return found


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring in a package once it is loaded."""

    def __init__(self) -> None:
        self._paths: dict[tuple[int, str], str] | None = None

    def link(self, obj: griffe.Object, tilde: str, target: str) -> str:
        """The Markdown for one role in ``obj``'s docstring."""
        shown = target.rsplit(".", 1)[-1] if tilde else target
        module = importlib.import_module(obj.module.path)
        scopes: list[Any] = [module]
        holder = obj if obj.is_class else obj.parent
        if holder is not None and holder.is_class:
            cls = _lookup([module], holder.path.removeprefix(obj.module.path + "."))
            scopes.insert(0, cls)
        found = _lookup(scopes, target)
        if self._paths is None:
            self._paths = public_paths()
        path = self._paths.get((id(found), target.rsplit(".", 1)[-1]))
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite every docstring of the loaded package ``pkg``."""
        for obj in _walk(pkg):
            doc = obj.docstring
            if doc is not None and ROLE.search(doc.value):
                doc.value = ROLE.sub(lambda m, o=obj: self.link(o, m[1], m[2]), doc.value)
