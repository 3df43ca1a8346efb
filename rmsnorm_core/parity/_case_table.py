"""The one table of sample cases that ``rmsnorm verify`` and the test suite both run.

Each case is a spec change, an input shape and tags; a runner (one per
backend path, see :mod:`rmsnorm_core.backends`) runs a case for every preset
and dtype. Shapes differ from any export sample (batch dims 5 and 3, never
2). Tags (:data:`TAGS`) select, instead of lists keyed by backend names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rmsnorm_core.parity._problems import Problem, make_problem
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._spec import RMSNormSpec

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""The dtypes every case runs in."""
QUICK_DTYPES: tuple[str, ...] = DTYPES[:2]
"""The dtypes of ``rmsnorm verify --quick``: the first two of :data:`DTYPES`."""
TAGS = frozenset({"verify", "quick", "export", "compile", "large"})
"""Every tag a case may carry: ``verify``, in ``rmsnorm verify``'s default matrix (the
rest run in the test suite only); ``quick``, in ``rmsnorm verify --quick``;
``export``, taken by runners that trace or export per problem (seconds each, e.g.
``torch.export`` and the TorchScript-based ONNX exporter); ``compile``, taken by the
costliest runners (``torch.compile``, the dynamo ONNX exporter); ``large``, above every
size at which a shipped kernel changes (taken by runners of a size-dependent kernel,
e.g. torch's pure-Python CPU kernel)."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One sample case.

    Attributes:
        id: names the case and its parameters (``"non-trailing"``).
        overrides: spec fields changed from the preset under test.
        shape: the input shape.
        residual: a residual-variant problem (``x`` and ``residual``).
        seed: the random seed of the problem's arrays.
        tags: a subset of :data:`TAGS`.
        batches: leading-dim sizes also run as calls of their own, compared bit for bit
            with the same rows of the full call (the ``batch`` check); empty: none.
    """

    id: str
    overrides: Mapping[str, Any]
    shape: tuple[int, ...]
    residual: bool = False
    seed: int = 0
    tags: frozenset[str] = frozenset()
    batches: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.tags) - TAGS
        if unknown:
            raise RMSNormError(
                f"case {self.id!r}: unknown tags {sorted(unknown)}; known {sorted(TAGS)}"
            )
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def problem(self, spec: RMSNormSpec, dtype: str) -> Problem:
        """The problem of this case for ``spec`` (the overrides applied) in ``dtype``."""
        return make_problem(
            spec.replace(**self.overrides),
            dtype,
            self.shape,
            seed=self.seed,
            residual=self.residual,
            batches=self.batches,
        )


def _case(id_: str, overrides: dict, shape: tuple, *tags: str, **kw: Any) -> Case:
    return Case(id_, overrides, shape, tags=frozenset(tags), **kw)


CASES: tuple[Case, ...] = (
    _case("trailing", {}, (5, 3, 64), "verify", "quick", "export", "compile", seed=0),
    _case("non-trailing", {"axes": (1,)}, (5, 16, 3), "verify", "quick", "export", seed=1),
    _case("several-axes", {"axes": (-2, -1)}, (5, 6, 10), "verify", seed=2),
    _case("partial", {"partial": 0.5}, (5, 3, 64), "verify", seed=3),
    _case("residual", {}, (5, 3, 64), "verify", seed=4, residual=True),
    _case("empty-batch", {}, (0, 3, 64), "verify", seed=5),
    _case("nchw-c-bias", {"axes": (1,), "use_bias": True}, (3, 12, 5, 4), seed=6),
    _case("non-adjacent", {"axes": (1, 3)}, (3, 5, 4, 6), seed=7),
    _case("partial-quarter", {"partial": 0.25}, (6, 40), seed=8),
    _case("size1-axis", {}, (5, 1), seed=9),
    _case("long-rows", {}, (48, 1536), seed=10),  # takes torch's blocked eager kernel
    _case(
        "residual-f32-bias",
        {"residual_dtype": "float32", "use_bias": True},
        (7, 96),
        seed=11,
        residual=True,
    ),
    # 1, 7, 64 and 320 rows of 1024: 1,024 to 327,680 elements, across every size at
    # which a shipped kernel changes (each backend's tests check that it is spanned)
    _case("batch", {}, (320, 1024), "verify", "export", "compile", "large", seed=12,
          batches=(1, 7, 64)),  # fmt: skip
)
"""The case table. The first six and ``batch`` are ``rmsnorm verify``'s (seeds kept so
that its problems are the same from run to run)."""

CHECKPOINT = Case("checkpoint", {}, (), tags=TAGS)
"""The case of a checkpoint's own layer (``rmsnorm verify --weights``): every runner
takes it."""


def cases(tag: str | None = None) -> tuple[Case, ...]:
    """The cases carrying ``tag`` (all of them for None)."""
    if tag is not None and tag not in TAGS:
        raise RMSNormError(f"unknown tag {tag!r}; known tags are {sorted(TAGS)}")
    return tuple(c for c in CASES if tag is None or tag in c.tags)


def distinct_presets() -> dict[str, RMSNormSpec]:
    """The presets whose specs differ, each under its first name.

    Two presets may name the same spec (``t5`` is ``flax``: both eps 1e-6,
    promoted output); a table of checks keyed by preset runs each spec once.
    """
    out: dict[str, RMSNormSpec] = {}
    for name, spec in RMSNormSpec.presets().items():
        if spec not in out.values():
            out[name] = spec
    return out
