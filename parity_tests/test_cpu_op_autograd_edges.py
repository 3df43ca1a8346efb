"""The native operator's autograd node where a backward is not the usual one: a batched
or non-contiguous ``dy``, hooks, and in-place updates of tensors that need no gradient
(each from a hostile probe of the node, 2026-12-07). Reference: the upstream module, or
the graph path (``use_kernel("graph")``), whose gradients are the upstream's.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm, use_kernel  # noqa: E402
from rmsnorm_torch.kernels._cpu_op import status  # noqa: E402
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT  # noqa: E402

pytestmark = pytest.mark.skipif(status() != "native", reason="the native operator is not built")

N = 64
ROWS = [3, FUSED_LIMIT // N + 2]  # a decode-sized call, and one above the fused op's size
DTYPES = [torch.float32, torch.bfloat16]


def _module(preset: str, dtype: torch.dtype, bias: bool = False) -> RMSNorm:
    spec = RMSNormSpec.preset(preset)
    m = RMSNorm.from_spec(spec.replace(use_bias=True) if bias else spec, N).to(dtype)
    with torch.no_grad():
        m.weight.copy_(torch.randn(N, generator=torch.Generator().manual_seed(1)) * 0.3 + 1)
    return m


def _x(rows: int, dtype: torch.dtype) -> torch.Tensor:
    return (torch.randn(rows, N, generator=torch.Generator().manual_seed(rows)) * 3).to(dtype)


def _same(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.dtype == b.dtype and torch.equal(a, b), i


@pytest.mark.parametrize("preset", ["torch", "llama", "t5"])
def test_batched_gradients_and_a_vectorized_jacobian(preset):
    """``is_grads_batched`` (and ``jacobian(vectorize=True)``, built on it) runs the
    backward under vmap: the node hands a batched ``dy`` to the graph path's autograd."""
    m, x = _module(preset, torch.float32), _x(3, torch.float32)
    dys = torch.randn(4, 3, N, generator=torch.Generator().manual_seed(2))
    results = []
    for kernel in ("auto", "graph"):
        with use_kernel(kernel):
            xr = x.clone().requires_grad_()
            batched = torch.autograd.grad(m(xr), [xr, m.weight], dys, is_grads_batched=True)
            jacobian = torch.autograd.functional.jacobian(m, x, vectorize=True)
            results.append((*batched, jacobian))
    assert results[0][0].shape == (4, 3, N) and results[0][2].shape == (3, N, 3, N)
    _same(*results)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["transposed", "expanded", "sliced"])
def test_a_dy_of_another_layout_gives_the_upstreams_bits(layout, dtype, rows):
    """ATen's reductions follow dy's layout: a transposed, expanded (``y.sum()``) or
    sliced ``dy`` gives ``torch.nn.RMSNorm``'s gradients bit for bit."""
    ours, theirs = _module("torch", dtype), torch.nn.RMSNorm(N).to(dtype)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
    g = torch.Generator().manual_seed(5)
    dy = {  # laid out after the dtype conversion, which would lay it out afresh
        "transposed": lambda: torch.randn(N, rows, generator=g).to(dtype).t(),
        "expanded": lambda: torch.randn(1, N, generator=g).to(dtype).expand(rows, N),
        "sliced": lambda: torch.randn(rows, 2 * N, generator=g).to(dtype)[:, ::2],
    }[layout]()
    assert not dy.is_contiguous()
    grads = []
    for m in (ours, theirs):
        xr = _x(rows, dtype).requires_grad_()
        grads.append(torch.autograd.grad(m(xr), [xr, m.weight], dy))
    _same(*grads)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_hooks_run_once_each_in_the_upstreams_order(dtype, rows):
    """The engine readies the weight's gradient before x's, as the upstream's graph does,
    and no hook runs twice (the graph route's inner backward works on views)."""
    orders = []
    for m in (_module("torch", dtype), torch.nn.RMSNorm(N).to(dtype)):
        for loss in ("sum", "random"):
            x = _x(rows, dtype).requires_grad_()
            order: list = []
            x.register_hook(lambda g, order=order: order.append("x"))
            hook = m.weight.register_hook(lambda g, order=order: order.append("weight"))
            y = m(x)
            (y.sum() if loss == "sum" else (y * torch.randn_like(y)).sum()).backward()
            hook.remove()
            orders.append(order)
    assert orders[:2] == orders[2:] and orders[0] == ["weight", "x"]


@pytest.mark.parametrize("x_grad", [False, True])
@pytest.mark.parametrize("preset", ["torch", "llama", "t5", "flax", "gemma"])
def test_with_a_bias_hooks_run_in_the_graph_paths_order(preset, x_grad):
    """The bias's gradient is readied before the weight's, then x's, as the graph path's
    nodes ready them (a float32 x of Gemma's, whose cloned weight is readied after x,
    is not covered: the closing note of 2026-12-07 says so)."""
    orders = []
    for kernel in ("auto", "graph"):
        m = _module(preset, torch.float32, bias=True)
        order: list = []
        m.weight.register_hook(lambda g, order=order: order.append("weight"))
        m.bias.register_hook(lambda g, order=order: order.append("bias"))
        x = _x(3, torch.bfloat16 if preset == "gemma" else torch.float32).requires_grad_(x_grad)
        if x_grad:
            x.register_hook(lambda g, order=order: order.append("x"))
        with use_kernel(kernel):
            m(x).float().sum().backward()
        orders.append(order)
    assert orders[0] == orders[1] and orders[0][:2] == ["bias", "weight"]


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("preset, dtype", [("torch", torch.float32), ("llama", torch.float32),
                                           ("t5", torch.bfloat16)])  # fmt: skip
def test_an_input_that_needs_no_gradient_may_be_updated_before_backward(preset, dtype, rows):
    """With only the weight trained, the upstream saves products of x, not x: updating x
    in place (a reused buffer) before backward is allowed, and dweight is unchanged."""
    m = _module(preset, dtype)
    dy = torch.randn(rows, N, generator=torch.Generator().manual_seed(3)).to(dtype)
    results = []
    for kernel, update in (("auto", True), ("graph", True), ("auto", False)):
        with use_kernel(kernel):
            x = _x(rows, dtype)
            y = m(x)
            if update:
                x.mul_(2)
            results.append(torch.autograd.grad(y, m.weight, dy))
    _same(results[0], results[1])
    _same(results[0], results[2])


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("preset", ["torch", "llama", "t5"])
def test_a_half_weight_beside_a_bias_may_be_updated_before_backward(preset, rows):
    """With a bias, a half weight enters the graph path widened (a copy is saved): an
    in-place update of it before backward is allowed there, and on the node."""
    dtype = torch.bfloat16
    results = []
    for kernel in ("auto", "graph"):
        m = _module(preset, dtype, bias=True)
        x = _x(rows, dtype).requires_grad_()
        with use_kernel(kernel):
            y = m(x)
            with torch.no_grad():
                m.weight.mul_(2)
            results.append(torch.autograd.grad(y.float().square().sum(), [x, m.weight, m.bias]))
    _same(*results)


@pytest.mark.parametrize("preset", ["torch", "llama", "gemma"])
def test_selective_checkpointing_sees_the_same_ops_on_every_call(preset):
    """Selective activation checkpointing replays the forward and matches its ops one by
    one: a dispatch mode sees the operator as one call (its ATen steps run partly on a
    parallel region's workers, where no mode is), so the replay matches, at 2 threads and
    a size cut into chunks, whatever the policy saves."""
    from functools import partial

    from torch.utils.checkpoint import CheckpointPolicy, checkpoint
    from torch.utils.checkpoint import create_selective_checkpoint_contexts as contexts

    def save_mm(ctx, op, *args, **kwargs):
        mm = op == torch.ops.aten.mm.default
        return CheckpointPolicy.MUST_SAVE if mm else CheckpointPolicy.PREFER_RECOMPUTE

    def save_all(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        norm, linear = _module(preset, torch.float32), torch.nn.Linear(N, N)
        x = _x(ROWS[1], torch.float32)
        with use_kernel("graph"):
            xr = x.clone().requires_grad_()
            expected = torch.autograd.grad(linear(norm(xr)).sum(), [xr, norm.weight])
        for policy in (save_mm, save_all):
            for _ in range(4):
                xr = x.clone().requires_grad_()
                fn = partial(contexts, policy)
                out = checkpoint(lambda t: linear(norm(t)), xr, use_reentrant=False, context_fn=fn)
                _same(torch.autograd.grad(out.sum(), [xr, norm.weight]), expected)
    finally:
        torch.set_num_threads(before)


# torch's compiled autograd reads .grad of non-leaf tensors while it traces the graph
# path's backward (the reference here), and warns
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_compiled_autograd_on_a_half_input():
    """A half x has one path to the result: the node has one edge to it, so a compiled
    autograd graph adds no missing gradient."""
    from torch._dynamo import compiled_autograd

    m, x = _module("llama", torch.bfloat16), _x(3, torch.bfloat16)
    results = []
    for kernel in ("auto", "graph"):
        xr = x.clone().requires_grad_()
        with use_kernel(kernel):
            y = m(xr)
        with compiled_autograd._enable(torch.compile(backend="eager")):
            y.float().square().sum().backward()
        results.append((xr.grad, m.weight.grad))
        m.weight.grad = None
    _same(*results)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("preset", ["torch", "gemma", "t5", "flax"])
def test_a_weight_trained_alone_may_be_updated_before_backward(preset, rows):
    """With x needing no gradient the upstream saves no weight (its gradient reads
    products of x only): updating the weight in place before backward is allowed."""
    m, x = _module(preset, torch.float32), _x(rows, torch.float32)
    dy = torch.randn(rows, N, generator=torch.Generator().manual_seed(4))
    results = []
    for kernel, update in (("auto", True), ("graph", True), ("auto", False)):
        with use_kernel(kernel):
            y = m(x)
            if update:
                with torch.no_grad():
                    m.weight.mul_(1.5)
            results.append(torch.autograd.grad(y, m.weight, dy))
        with torch.no_grad():
            m.weight.div_(1.5 if update else 1.0)
    _same(results[0], results[1])
    _same(results[0], results[2])


def test_plans_are_kept_once_however_many_eps_values_modules_take():
    from rmsnorm_torch.kernels import _cpu_norm

    m, x = _module("torch", torch.float32), _x(3, torch.float32).requires_grad_()
    m(x).sum().backward()
    kept = len(_cpu_norm._PLANS)
    for i in range(50):
        m.eps = 1e-6 * (1 + i)
        y = m(x)
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        with use_kernel("graph"):
            (expected,) = torch.autograd.grad(m(x).square().sum(), x)
        _same([gx.detach()], [expected])
    assert len(_cpu_norm._PLANS) == kept
