"""The operator's own sums in ATen's order (``csrc/rmsnorm_sums.h``, ``row_sum`` in
``csrc/rmsnorm_cpu.cpp``). The weight's gradient summed over rows without the full-size
product: the bits of ``at::sum_to`` on the products, which are the upstream's, at row
counts on either side of each of the summation's group and level boundaries, at thread
counts that split the columns unevenly, for a column count that the grouped sums take
(a multiple of 32) and for ones that keep the stored products. The rows' sums of squares
(forward) and of the statistic's gradient products (backward) without an ATen call: at
row lengths on either side of each vector, stream and level boundary.

Each call is compared with the graph path's (``use_kernel("graph")``: plain differentiable
ops, autograd's own sums) and, for torch's preset, with ``torch.nn.RMSNorm``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _torch_helpers import bits  # noqa: E402

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm, use_kernel  # noqa: E402
from rmsnorm_torch.kernels._cpu_op import status  # noqa: E402

pytestmark = pytest.mark.skipif(status() != "native", reason="the native operator is not built")

# rows around the group of 16 (and the level-1 sum of 256, level-2 of 4096); 65,537 rows
# still group by 16, 524,289 (ceil(log2) = 20) by 32
ROWS = [1, 15, 16, 17, 255, 257, 4095, 4097]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _inputs(rows: int, n: int, dtype: torch.dtype):
    """A weight, x and dy; x's magnitudes over many binades, so that another summation
    order gives other bits."""
    g = torch.Generator().manual_seed(rows * 7 + n)
    w = torch.randn(n, generator=g) * 0.3 + 1
    x = (torch.randn(rows, n, generator=g) * torch.exp(torch.randn(rows, n, generator=g))).to(dtype)
    dy = (torch.randn(rows, n, generator=g) * 4).to(dtype)
    return w, x, dy


def _grads(m, x: torch.Tensor, dy: torch.Tensor, kernel: str = "auto"):
    xr = x.clone().requires_grad_()
    with use_kernel(kernel):
        return torch.autograd.grad(m(xr), [xr, m.weight], dy)


def _call(preset: str, rows: int, n: int, dtype: torch.dtype, kernel: str):
    w, x, dy = _inputs(rows, n, dtype)
    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), n).to(dtype)
    with torch.no_grad():
        m.weight.copy_(w)
    return _grads(m, x, dy, kernel)


def _same(ours, theirs) -> None:
    """The same bits (torch.equal alone takes -0 for +0)."""
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and torch.equal(bits(a), bits(b))


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"threads{t}")
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows", ROWS)
def test_grouped_sums_are_the_graph_paths(threads, rows, dtype) -> None:
    for preset, n in (("torch", 96), ("llama", 64), ("flax", 32)):
        _same(_call(preset, rows, n, dtype, "auto"), _call(preset, rows, n, dtype, "graph"))


@pytest.mark.parametrize("rows,n", [(65537, 32), (524289, 32), (300, 4096)])
def test_large_row_counts_match_torch(threads, rows, n) -> None:
    """Above 2^19 rows the groups are 32 rows long; against torch.nn.RMSNorm itself."""
    ours = _call("torch", rows, n, torch.float32, "auto")
    w, x, dy = _inputs(rows, n, torch.float32)
    ref = torch.nn.RMSNorm(n, eps=None)
    with torch.no_grad():
        ref.weight.copy_(w)
    _same(ours, _grads(ref, x, dy))


@pytest.mark.parametrize("n,grouped", [(96, True), (4096, True), (40, False), (4004, False)])
def test_full_size_products_only_where_not_grouped(n, grouped) -> None:
    """The grouped sums leave no full-size sum in the backward (its other sums are per
    chunk, fewer rows); a column count that is not a multiple of 32 keeps autograd's
    at::sum_to over the stored products (same bits)."""
    rows = 2048
    with torch.profiler.profile(record_shapes=True) as prof:
        got = _call("torch", rows, n, torch.float32, "auto")
    sums = [e.input_shapes[0] for e in prof.events() if e.name == "aten::sum" and e.input_shapes]
    assert ([rows, n] in sums) is not grouped
    _same(got, _call("torch", rows, n, torch.float32, "graph"))


# row lengths: below one vector (ATen's sum), a scalar tail, a stream tail, one and two
# levels of groups, the last below ATen's parallel grain, and the grain itself (ATen's)
LENGTHS = [5, 8, 13, 33, 100, 1000, 4103, 8200, 20011, 32767, 32768]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", LENGTHS)
def test_row_sums_are_the_graph_paths(n, dtype) -> None:
    """Rows' sums at each length, forward and backward, against the graph path's (at the
    default thread count: a row's sum is one thread's at any count, the threads split rows)."""
    for preset in ("torch", "t5", "flax"):
        for rows in (1, 19):
            _same(_call(preset, rows, n, dtype, "auto"), _call(preset, rows, n, dtype, "graph"))


@pytest.mark.parametrize(
    "n,own", [(32, True), (4096, True), (16384, True), (5, False), (32768, False)]
)
def test_row_sums_call_no_aten_sum(n, own) -> None:
    """Between 8 and 32767 elements a row's sums call no ATen sum, forward or backward
    (after the once-per-process checks of the order; lengths that are multiples of 32, so
    that the weight's gradient is grouped too); otherwise each chunk's at::sum runs."""
    _call("torch", 2, 96, torch.float32, "auto")  # the order checks, before the count
    rows = 3
    with torch.profiler.profile(record_shapes=True) as prof:
        _call("torch", rows, n, torch.float32, "auto")
    sums = [e.input_shapes[0] for e in prof.events() if e.name == "aten::sum" and e.input_shapes]
    assert (len(sums) == 0) is own, sums


_CHILD = """
import torch
from rmsnorm_torch import RMSNorm, use_kernel
bad = 0
for n in (13, 96, 4103):
    for rows in (1, 17, 300):
        m = RMSNorm(n)
        with torch.no_grad():
            m.weight.copy_(torch.randn(n))
        x = torch.randn(rows, n) * torch.exp(torch.randn(rows, n))
        dy = torch.randn(rows, n)
        out = []
        for kernel in ("auto", "graph"):
            xr = x.clone().requires_grad_()
            with use_kernel(kernel):
                y = m(xr)
                out.append((y.detach(), *torch.autograd.grad(y, [xr, m.weight], dy)))
        bad += not all(torch.equal(a, b) for a, b in zip(*out))
print("capability", torch.backends.cpu.get_cpu_capability(), "differing", bad)
"""


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_every_aten_capability_gives_the_graph_paths_bits(capability) -> None:
    """ATen picks its kernels' vector width at start-up (ATEN_CPU_CAPABILITY): whichever
    it picks, the operator's sums are at::sum's bits (its own where the order checks
    find ATen's order, ATen's own calls where they do not)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.endswith("differing 0"), line


@pytest.mark.parametrize("shape", [(96,), (1, 96), (2, 1, 96)])
def test_zero_products_keep_their_sign(shape) -> None:
    """A zero dy against negative normalized values makes -0 products: the weight's
    gradient is -0 where at::sum_to returns the products themselves (x without leading
    dims) and +0 where it sums them (0 + -0), as autograd gives it on the graph path."""
    m = RMSNorm(96)
    x = -torch.rand(shape) - 0.5
    dy = torch.zeros(shape)
    ours = _grads(m, x, dy)
    _same(ours, _grads(m, x, dy, "graph"))
    _same(ours, _grads(torch.nn.RMSNorm(96), x, dy))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [32, 40])
@pytest.mark.parametrize("rows,later", [(2, 1), (300, 17), (300, 290)])
def test_weight_gradient_keeps_the_first_rows_nan(dtype, n, rows, later) -> None:
    """Where a column's products hold NaNs of both signs (a NaN dy against a zero row
    first, a row of x holding a NaN with its sign set later), the weight's gradient keeps
    the NaN at::sum keeps (its running sum's, the first), in the grouped sums (n = 32) as
    in at::sum_to (n = 40)."""
    x = torch.ones(rows, n, dtype=dtype)
    x[0] = 0.0
    x[later, 0] = torch.tensor(float("nan"), dtype=dtype).neg()
    dy = torch.ones(rows, n, dtype=dtype)
    dy[0, 0] = float("nan")
    m = RMSNorm(n)
    # the weight's gradient only (where NaNs meet in x's, README leaves their payload open)
    ours, theirs = (_grads(m, x, dy, kernel)[1:] for kernel in ("auto", "graph"))
    assert ours[0][0].isnan()
    _same(ours, theirs)
