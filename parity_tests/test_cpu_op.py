"""The CPU operator (``rmsnorm_torch/kernels/_cpu_op.py``) computes the graph path's bits,
forward and every gradient, for every preset it takes, native and pure-Python alike.

The reference is the graph path forced with ``use_kernel("graph")`` (plain ops, and
autograd's own backward of them) and, for the ``torch`` preset, ``torch.nn.functional.
rms_norm`` itself; shapes straddle ``FUSED_LIMIT`` and the tests' ``MIDDLE_SIZE``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _sizes import MIDDLE_SIZE
from _sweep import covering, sweep

from rmsnorm_core import RMSNormSpec
from rmsnorm_torch import RMSNorm, use_kernel
from rmsnorm_torch.kernels._cpu_op import status
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

PRESETS = ["torch", "llama", "gemma", "flax", "t5", "olmo2"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHAPES = {  # (shape, axes): below and above each threshold, one row, several dims
    "7x4096": ((7, 4096), (-1,)),
    "9x4096": ((9, 4096), (-1,)),
    "3x17x1024": ((3, 17, 1024), (-1,)),
    "49x4096": ((49, 4096), (-1,)),
    "1x40000": ((1, 40000), (-1,)),
    "5x3x40x64": ((5, 3, 40, 64), (-2, -1)),
    "33x1001": ((33, 1001), (-1,)),  # rows not a multiple of the kernel's 8 lanes
}


def _grads(m: RMSNorm, x: torch.Tensor, dy: torch.Tensor, kernel: str):
    x = x.detach().clone().requires_grad_()
    params = [p for p in (m.weight, m.bias) if p is not None]
    with use_kernel(kernel):
        y = m(x)
    grads = torch.autograd.grad(y, [x, *params], dy)
    return [y.detach(), *grads]


OP_ROWS = [(p, b, d, s) for p in PRESETS for b in (False, True) for d in DTYPES for s in SHAPES]
# the default run: every shape (each side of each threshold) in every dtype, and every
# preset in every dtype and with and without a bias
OP_ROWS = sweep(OP_ROWS, covering(OP_ROWS, [(3, 2), (0, 2), (0, 1)]))


@pytest.mark.parametrize(
    "preset,bias,dtype,shape",
    OP_ROWS,
    ids=[f"{p}-{'bias' if b else 'nobias'}-{d}-{s}" for p, b, d, s in OP_ROWS],
)
def test_the_cpu_op_equals_the_graph_path_forward_and_gradients(preset, bias, dtype, shape):
    dims, axes = SHAPES[shape]
    spec = RMSNormSpec.preset(preset).replace(axes=axes, use_bias=bias)
    m = RMSNorm.from_spec(spec, dims[len(dims) - len(axes) :]).to(DTYPES[dtype])
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = (torch.randn(dims, generator=g) * 4).to(DTYPES[dtype])
    dy = torch.randn(dims, generator=g).to(m(x).dtype)
    ours = _grads(m, x, dy, "blocked")
    graph = _grads(m, x, dy, "graph")
    for name, a, b in zip(["y", "dx", "dweight", "dbias"], ours, graph, strict=False):
        assert a.dtype == b.dtype and torch.equal(a, b), name


# A float64 weight is left out: the spec forms g in float32 where torch multiplies in
# float64, at every size and on every path (issue 31 decides that rule).
SIZE_ROWS = [(r, d, w) for r in (1, 7, 8, 47, 48, 64, 4096 // 16) for d in DTYPES for w in DTYPES]
# the default run: every row count (each side of each threshold) with every input and
# every weight dtype, and every input dtype with every weight dtype
SIZE_ROWS = sweep(SIZE_ROWS, covering(SIZE_ROWS, [(0, 1), (0, 2), (1, 2)]))


@pytest.mark.parametrize(
    "rows,dtype,wdtype", SIZE_ROWS, ids=[f"{r}x4096-{d}-{w}" for r, d, w in SIZE_ROWS]
)
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
def test_the_module_equals_torch_functional_rms_norm_at_every_size(rows, dtype, wdtype):
    assert 7 * 4096 < MIDDLE_SIZE <= 8 * 4096 and 47 * 4096 < FUSED_LIMIT <= 48 * 4096
    g = torch.Generator().manual_seed(rows)
    x = (torch.randn(rows, 4096, generator=g) * 3).to(DTYPES[dtype]).requires_grad_()
    w = (torch.randn(4096, generator=g) + 1).to(getattr(torch, wdtype)).requires_grad_()
    m = RMSNorm(4096, eps=1e-6).to(w.dtype)
    with torch.no_grad():
        m.weight.copy_(w)
    dy = torch.randn(rows, 4096, generator=g)
    y_ref = torch.nn.functional.rms_norm(x, [4096], w, 1e-6)
    ref = [y_ref.detach(), *torch.autograd.grad(y_ref, [x, w], dy.to(y_ref.dtype))]
    y = m(x)
    ours = [y.detach(), *torch.autograd.grad(y, [x, m.weight], dy.to(y.dtype))]
    for name, a, b in zip(["y", "dx", "dweight"], ours, ref, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), name


def test_the_native_kernel_is_built_here():
    # the test machines have a C++ compiler: the fallback would hide a broken build
    assert status() == "native"


_FALLBACK = textwrap.dedent(
    """
    import warnings
    import torch
    from rmsnorm_core import RMSNormSpec, RMSNormWarning
    from rmsnorm_torch import RMSNorm, use_kernel
    from rmsnorm_torch.kernels._cpu_op import status

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = []
        # gemma with a bias; t5, whose dx adds two partial gradients rounded to bf16
        for spec in (RMSNormSpec.preset("gemma").replace(use_bias=True), RMSNormSpec.preset("t5")):
            m = RMSNorm.from_spec(spec, 1024).bfloat16()
            with torch.no_grad():
                for p in m.parameters():
                    p.normal_()
            x = torch.randn(70, 1024).bfloat16().requires_grad_()
            dy = torch.randn(70, 1024).bfloat16()
            pair = []
            for kernel in ("blocked", "graph"):
                with use_kernel(kernel):
                    y = m(x)
                pair.append([y, *torch.autograd.grad(y, [x, *m.parameters()], dy)])
            results.extend(zip(*pair))
    assert status().startswith("python (disabled by RMSNORM_NATIVE=0)"), status()
    from rmsnorm_torch.kernels._kernel_choice import Kernel
    auto = RMSNorm(1024)
    auto(torch.randn(300, 1024))  # the fallback is slower than plain ops: auto takes those
    assert [e.kernel for e in auto._calls.values()] == [Kernel.GRAPH]
    assert len(results) == 7 and all(torch.equal(a, b) for a, b in results)
    ours = [w for w in caught if issubclass(w.category, RMSNormWarning)]
    messages = [str(w.message) for w in ours]
    assert len(messages) == 1 and "take the graph path" in messages[0], messages
    assert ours[0].filename == "<string>", ours[0].filename  # this script's line, not ours
    assert "use_kernel('blocked') runs the kernel's pure-Python form" in messages[0]
    print("ok")
    """
)


def test_the_pure_python_fallback_computes_the_same_bits_and_says_so_once():
    env = {**os.environ, "RMSNORM_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", _FALLBACK], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_operator_shares_torchs_openmp_runtime():
    # a second OpenMP runtime in the process would oversubscribe the cores
    pytest.importorskip("torch")
    from rmsnorm_torch.kernels._cpu_op import ops

    ops().rmsnorm_forward(
        torch.randn(64, 1024), [1024], None, None, 1e-6, False, torch.float32, torch.float32, False
    )
    maps = Path("/proc/self/maps").read_text().splitlines()  # Linux: the loaded libraries
    runtimes = {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
    assert len(runtimes) <= 1, runtimes


def _direct_calls():
    x, inv = torch.randn(4, 8), torch.ones(4, 1)
    fwd = (8,), None, None, 1e-6, False, torch.float32, torch.float32, False
    bwd = (None, False, False, torch.float32, False, torch.float32, True, True, True, False)
    return {
        "x float64": ("forward", (x.double(), [8], *fwd[1:]), "x must be float32"),
        "bias shape": ("forward", (x, [8], None, torch.ones(2, 4), *fwd[3:]), "bias of shape"),
        "out_dtype int": (
            "forward",
            (x, [8], None, None, 1e-6, False, torch.float32, torch.int32, False),
            "out_dtype must be",
        ),  # fmt: skip
        "inv rows": ("backward", (x, x, inv[:1], [8], *bwd), r"inv must be .* shape \(4, 1\)"),
        "dy shape": ("backward", (torch.randn(8, 4), x, inv, [8], *bwd), "dy of shape"),
    }


@pytest.mark.parametrize("case", list(_direct_calls()))
def test_the_operator_refuses_arguments_the_module_never_passes(case):
    from rmsnorm_torch.kernels._cpu_op import ops

    which, args, message = _direct_calls()[case]
    with pytest.raises(RuntimeError, match=message):
        getattr(ops(), f"rmsnorm_{which}")(*args)
