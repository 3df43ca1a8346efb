"""The weight's gradient summed over rows in ATen's order without the full-size product
(``csrc/rmsnorm_sums.h``): the bits of ``at::sum_to`` on the products, which are the
upstream's, at row counts on either side of each of the summation's group and level
boundaries, at thread counts that split the columns unevenly, for a column count that
the grouped sums take (a multiple of 32) and for ones that keep the stored products.

Each call is compared with the graph path's (``use_kernel("graph")``: plain differentiable
ops, autograd's own sums) and, for torch's preset, with ``torch.nn.RMSNorm``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm, use_kernel  # noqa: E402
from rmsnorm_torch.kernels._cpu_op import status  # noqa: E402

pytestmark = pytest.mark.skipif(status() != "native", reason="the native operator is not built")

# rows around the group of 16 (and the level-1 sum of 256, level-2 of 4096); 65,537 rows
# still group by 16, 524,289 (ceil(log2) = 20) by 32
ROWS = [1, 15, 16, 17, 255, 257, 4095, 4097]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _call(preset: str, rows: int, n: int, dtype: torch.dtype, kernel: str):
    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), n).to(dtype)
    g = torch.Generator().manual_seed(rows * 7 + n)
    with torch.no_grad():
        m.weight.copy_(torch.randn(n, generator=g) * 0.3 + 1)
    # magnitudes over many binades, so that another summation order gives other bits
    x = (torch.randn(rows, n, generator=g) * torch.exp(torch.randn(rows, n, generator=g))).to(dtype)
    dy = (torch.randn(rows, n, generator=g) * 4).to(dtype)
    xr = x.requires_grad_()
    with use_kernel(kernel):
        y = m(xr)
        return torch.autograd.grad(y, [xr, m.weight], dy)


def _same(ours, theirs) -> None:
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


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
    dtype = torch.float32
    ours = _call("torch", rows, n, dtype, "auto")
    ref = torch.nn.RMSNorm(n, eps=None)
    g = torch.Generator().manual_seed(rows * 7 + n)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(n, generator=g) * 0.3 + 1)
    x = (torch.randn(rows, n, generator=g) * torch.exp(torch.randn(rows, n, generator=g))).to(dtype)
    dy = (torch.randn(rows, n, generator=g) * 4).to(dtype)
    xr = x.requires_grad_()
    _same(ours, torch.autograd.grad(ref(xr), [xr, ref.weight], dy))


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
