"""The Triton kernels against the float64 reference: every preset x dtype x (plain,
residual), forward and every gradient, random specs, and rows wider than a block.

Without a GPU the kernels run under ``TRITON_INTERPRET=1`` on CPU tensors
(``_triton_setup``): the same source, the same bits as on a GPU. Judged by
core's checker under the one tolerance table, bit-for-bit share included.
"""

from __future__ import annotations

import math
import random

import pytest
from _sweep import covering, sweep
from _triton_setup import DEVICE, run_problem, torch

from rmsnorm_core import RMSNormError, RMSNormSpec
from rmsnorm_core.testing import DTYPES, check_outcome, distinct_presets, make_problem
from rmsnorm_torch import rms_norm, use_kernel

PRESETS = list(distinct_presets())
# shapes unlike the ones the kernels were developed on ((6, 40), (64, 1000))
PLAIN_SHAPE, RESIDUAL_SHAPE = (3, 5, 72), (7, 2, 48)


def _check(problem, outcome) -> None:
    for check, result in check_outcome(problem, outcome):
        assert result.passed, f"{check}: {result.reason}"


PRESET_ROWS = [(p, d, v) for p in PRESETS for d in DTYPES for v in ("plain", "residual")]
# the default run: every preset in every dtype and in both variants, each dtype in both
PRESET_ROWS = sweep(PRESET_ROWS, covering(PRESET_ROWS, [(0, 1), (0, 2), (1, 2)]))


@pytest.mark.parametrize(
    "preset,dtype,variant", PRESET_ROWS, ids=["-".join(r) for r in PRESET_ROWS]
)
def test_every_preset_matches_the_reference(preset, dtype, variant):
    spec = RMSNormSpec.preset(preset)
    residual = variant == "residual"
    if residual:  # the residual sum kept in float32 too, with a bias: every kernel input
        spec = spec.replace(residual_dtype="float32", use_bias=True)
    shape = RESIDUAL_SHAPE if residual else PLAIN_SHAPE
    problem = make_problem(spec, dtype, shape, seed=len(preset), residual=residual)
    outcome = run_problem(problem)
    assert outcome.grads is not None and outcome.grads[0] is not None
    _check(problem, outcome)


def _random_spec(rng: random.Random) -> RMSNormSpec:
    use_scale = rng.random() < 0.8
    return RMSNormSpec(
        axes=rng.choice([(-1,), (-1,), (-2, -1)]),
        eps=10 ** rng.uniform(-8, -2),
        eps_placement=rng.choice(["inside", "outside"]),
        cast_order=rng.choice(["after_scale", "before_scale"]),
        output_dtype=rng.choice(["input", "promote", "param"]),
        param_dtype=rng.choice(["float16", "bfloat16", "float32", "float64"]),
        use_scale=use_scale,
        scale_offset=rng.choice([0.0, 1.0]) if use_scale else 0.0,
        use_bias=rng.random() < 0.5,
        partial=rng.choice([1.0, 1.0, 0.5, 0.3]),
        residual_dtype=rng.choice(["input", "float32"]),
    )


# the default run: the first 8 random specs (each seed draws every field afresh)
@pytest.mark.parametrize("seed", sweep(range(24), range(8)))
def test_random_specs_match_the_reference(seed):
    rng = random.Random(seed)
    spec = _random_spec(rng)
    shape = (rng.randint(1, 9), rng.randint(1, 4), rng.randint(1, 300))
    dtype = rng.choice(DTYPES)
    problem = make_problem(spec, dtype, shape, seed=seed, residual=rng.random() < 0.4)
    try:
        outcome = run_problem(problem)
    except RMSNormError as err:  # float64 parameters without an offset multiply in float64,
        # as torch does; the kernel multiplies in float32, so it refuses them, saying so
        assert spec.param_dtype == "float64" and "multiplies the scale in float64" in str(err)
        return
    _check(problem, outcome)


@pytest.mark.parametrize(
    "cols,dtype", [(65536, "bfloat16"), (20000, "float32"), (16385, "float16")]
)
def test_rows_wider_than_a_block_loop_over_column_blocks(cols, dtype):
    # 65536 = four blocks of 16384; 20000 and 16385 end in a partial block
    from rmsnorm_torch.kernels._triton_ops import settings

    assert not settings(cols)[1]
    for residual in (False, True):
        spec = RMSNormSpec.preset("gemma", partial=0.7, use_bias=True)
        problem = make_problem(spec, dtype, (3, cols), seed=cols, residual=residual)
        _check(problem, run_problem(problem))


def test_backward_is_deterministic_and_reduces_partial_sums():
    # more rows than backward programs: every program sums several rows, and the
    # float32 partials are reduced once in a fixed order (the same bits every run)
    spec = RMSNormSpec.preset("llama", use_bias=True)
    problem = make_problem(spec, "bfloat16", (37, 96), seed=3)
    first, second = run_problem(problem), run_problem(problem)
    for a, b in zip(first.grads, second.grads, strict=True):
        assert a.tobytes() == b.tobytes()
    _check(problem, first)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_and_graph_round_half_outputs_alike(dtype):
    # both round the spec's float32 values once to the output dtype, to nearest even;
    # a truncating cast (the interpreter's own bfloat16 cast) agrees on about half.
    # The float32 values themselves differ in the last bit now and then (multiply by
    # the inverse rms against divide by the root), which moves a rare rounding.
    spec = RMSNormSpec.preset("llama")
    x = (torch.randn(64, 256, generator=torch.Generator().manual_seed(5)) * 3).to(
        getattr(torch, dtype)
    )
    x = x.to(DEVICE)
    with use_kernel("triton"):
        y_triton = rms_norm(x, spec)
    with use_kernel("graph"):
        y_graph = rms_norm(x, spec)
    same = (y_triton == y_graph).float().mean().item()
    assert same > 0.999 if dtype != "float32" else same > 0.3, same


def test_special_values_stay_in_their_rows():
    # the spec's edge rules: an all-zero row gives zeros and finite gradients (eps
    # outside too), a NaN or Inf row is that row's alone
    spec = RMSNormSpec.preset("paper", use_bias=False)
    x = torch.randn(4, 32, device=DEVICE)
    x[0] = 0.0
    x[1, 3] = math.nan
    x[2, 5] = math.inf
    x.requires_grad_(True)
    with use_kernel("triton"):
        y = rms_norm(x, spec)
        y.backward(torch.ones_like(y))
    assert torch.equal(y[0], torch.zeros(32, device=DEVICE))
    assert torch.isfinite(x.grad[0]).all()
    assert torch.isnan(y[1]).all() and torch.isfinite(y[3]).all()
    assert torch.isfinite(x.grad[3]).all()
