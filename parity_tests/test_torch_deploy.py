"""TorchScript (script, trace, save/load), torch.compile and torch.export."""

from __future__ import annotations

import io

import pytest
from _parity import PRESETS, check_forward, make_problem
from _sweep import covering, sweep

torch = pytest.importorskip("torch")
from _torch_helpers import module_for, to_numpy, to_torch  # noqa: E402

from rmsnorm_torch import COMPILE_OPTIONS, ResidualRMSNorm  # noqa: E402

# (id, sample shape, other shape, overrides): deployed artifacts run on "other".
DEPLOY_CASES = [
    ("trailing", (2, 9, 48), (5, 3, 48), {}),
    ("nchw-c", (2, 12, 3, 3), (4, 12, 5, 2), {"axes": (1,)}),
    ("two-axes", (2, 6, 10), (7, 6, 10), {"axes": (-2, -1)}),
    ("partial", (3, 40), (8, 40), {"partial": 0.5}),
    ("bias-outside", (3, 40), (6, 40), {"use_bias": True, "eps_placement": "outside"}),
    ("long-rows", (4, 2048), (24, 2048), {}),
]
DTYPES = ["float32", "bfloat16", "float16"]
SCRIPT_CASES = [(p, d, c) for p in PRESETS for d in DTYPES for c in DEPLOY_CASES]
# the default run: every preset in every dtype, every case in every dtype
SCRIPT_CASES = sweep(
    SCRIPT_CASES, covering(SCRIPT_CASES, [(0, 1), (2, 1)], lambda r: (r[0], r[1], r[2][0]))
)
GRAD_CASES = [(p, c) for c in DEPLOY_CASES for p in PRESETS]
# the default run (float32 only, as the full sweep): every preset and every case
GRAD_CASES = sweep(GRAD_CASES, covering(GRAD_CASES, [(0,), (1,)], lambda r: (r[0], r[1][0])))


def _module_and_inputs(preset, dtype, case):
    case_id, sample_shape, other_shape, overrides = case
    other = make_problem(preset, dtype, other_shape, overrides, seed=1)
    module = module_for(make_problem(preset, dtype, sample_shape, overrides))
    with torch.no_grad():  # the same parameters for both problems
        if other.scale is not None:
            module.weight.copy_(to_torch(other.scale))
        if other.bias is not None:
            module.bias.copy_(to_torch(other.bias))
    sample = to_torch(make_problem(preset, dtype, sample_shape, overrides).x)
    return module, sample, other


@pytest.mark.parametrize(
    "preset,dtype,case", SCRIPT_CASES, ids=[f"script-{d}-{p}-{c[0]}" for p, d, c in SCRIPT_CASES]
)
def test_script_equals_eager_and_survives_save_load(preset, dtype, case):
    module, _, other = _module_and_inputs(preset, dtype, case)
    scripted = torch.jit.script(module)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x = to_torch(other.x)
    with torch.no_grad():
        eager = module(x)
        assert torch.equal(scripted(x), eager)
        assert torch.equal(loaded(x), eager)
    check_forward(other, to_numpy(loaded(x)), name=f"script {dtype} {preset} {case[0]}")


@pytest.mark.parametrize("preset,case", GRAD_CASES, ids=[f"{c[0]}-{p}" for p, c in GRAD_CASES])
def test_script_gradients_match_reference(preset, case):
    from _parity import check_gradients

    module, _, other = _module_and_inputs(preset, "float32", case)
    scripted = torch.jit.script(module)
    x = to_torch(other.x, grad=True)
    scripted(x).backward(to_torch(other.dy))
    check_gradients(
        other,
        to_numpy(x.grad),
        to_numpy(module.weight.grad) if module.weight is not None else None,
        to_numpy(module.bias.grad) if module.bias is not None else None,
        name=f"script grad {preset} {case[0]}",
    )


@pytest.mark.parametrize(
    "preset,dtype,case", SCRIPT_CASES, ids=[f"trace-{d}-{p}-{c[0]}" for p, d, c in SCRIPT_CASES]
)
def test_trace_runs_on_other_shapes(preset, dtype, case):
    module, sample, other = _module_and_inputs(preset, dtype, case)
    with torch.no_grad():
        traced = torch.jit.trace(module, (sample,))
        check_forward(
            other, to_numpy(traced(to_torch(other.x))), name=f"trace {dtype} {preset} {case[0]}"
        )


def test_residual_module_scripts():
    from rmsnorm_core import RMSNormSpec

    m = ResidualRMSNorm(32, spec=RMSNormSpec(residual_dtype="float32"))
    s = torch.jit.script(m)
    x, r = torch.randn(5, 32).bfloat16(), torch.randn(5, 32).bfloat16()
    y, summed = s(x, r)
    y_e, summed_e = m(x, r)
    assert torch.equal(y, y_e) and torch.equal(summed, summed_e) and summed.dtype == torch.float32
    traced = torch.jit.trace(m, (x, r))
    assert torch.equal(traced(x * 2, r)[1], m(x * 2, r)[1])


# llama with bfloat16 parameters gives a bfloat16 output, where the parity check also
# demands bit-for-bit agreement: inductor without COMPILE_OPTIONS fails it.
COMPILE_CASES = [
    ("llama", "bfloat16", ("trailing", (2, 9, 48), (5, 3, 48), {"param_dtype": "bfloat16"})),
    ("gemma", "float32", DEPLOY_CASES[1]),
    ("paper", "float16", DEPLOY_CASES[3]),
]


@pytest.mark.parametrize(
    "preset,dtype,case", COMPILE_CASES, ids=[f"compile-{d}-{p}-{c[0]}" for p, d, c in COMPILE_CASES]
)
def test_compile_fullgraph_dynamic(preset, dtype, case):
    module, sample, other = _module_and_inputs(preset, dtype, case)
    compiled = torch.compile(module, fullgraph=True, dynamic=True, options=COMPILE_OPTIONS)
    with torch.no_grad():
        compiled(sample)
        check_forward(
            other, to_numpy(compiled(to_torch(other.x))), name=f"compile {dtype} {preset}"
        )


EXPORT_CASES = [
    (p, d, c) for p in PRESETS for d in ("float32", "bfloat16") for c in DEPLOY_CASES[:4]
]
# the default run: every preset in both dtypes, every case in both dtypes
EXPORT_CASES = sweep(
    EXPORT_CASES, covering(EXPORT_CASES, [(0, 1), (2, 1)], lambda r: (r[0], r[1], r[2][0]))
)


@pytest.mark.parametrize(
    "preset,dtype,case", EXPORT_CASES, ids=[f"export-{d}-{p}-{c[0]}" for p, d, c in EXPORT_CASES]
)
def test_torch_export_dynamic_batch_and_sequence(preset, dtype, case):
    module, sample, other = _module_and_inputs(preset, dtype, case)
    axes = {a % sample.dim() for a in module.axes}
    free = [d for d in range(sample.dim()) if d not in axes]
    shapes = ({d: torch.export.Dim(f"d{d}", min=1) for d in free},)
    program = torch.export.export(module, (sample,), dynamic_shapes=shapes)
    with torch.no_grad():
        y = program.module()(to_torch(other.x))
    check_forward(other, to_numpy(y), name=f"export {dtype} {preset} {case[0]}")
