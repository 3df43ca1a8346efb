"""Names that import their module on first use, so registering a backend imports no framework.

Every ``rmsnorm`` command that lists backends imports each backend's entry point;
a backend that declares its capabilities with :func:`lazy` callables (and a
package ``__init__`` built with :func:`lazy_exports`) costs that command no
framework import: ``rmsnorm convert x.pt`` imports torch only, a ``.msgpack``
jax and flax only, ``rmsnorm spec`` neither (einops finds its backends the
same way).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported on the first call and called with the same arguments.

    Args:
        module: the dotted module that defines ``name``.
        name: a callable of that module.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``{module}.{name}``, imported on the first call."
    return call


def lazy_exports(
    package: str, where: Mapping[str, str], submodules: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    Args:
        package: the package's ``__name__``.
        where: public name -> the module that defines it.
        submodules: names that are modules of the package (``from pkg import linen``).

    Returns:
        ``(__getattr__, __dir__)``: assign both at the package's top level. A name,
        once read, is stored in the package so later reads skip the function.
    """

    def getattr_(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted([*vars(sys.modules[package]), *where, *submodules])

    return getattr_, dir_
