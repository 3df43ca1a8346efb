"""PyTorch layer: eager, scripted and NCHW against torch.nn.RMSNorm and a clone.

Input [4096, 4096] on the CPU (issue #4's targets). Forward cases run under
``torch.no_grad()``; forward+backward is ``torch.autograd.grad`` of the output
with a fixed cotangent, for x and the weight.
"""

from __future__ import annotations

from ._harness import register

SIZE = 4096
DTYPES = ("float32", "bfloat16", "float16")


def _setup(dtype_name: str):
    import torch

    from rmsnorm_torch import RMSNorm

    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    x = torch.randn(SIZE, SIZE).to(dtype)
    ours = RMSNorm(SIZE, dtype=dtype)
    peer = torch.nn.RMSNorm(SIZE, dtype=dtype)
    with torch.no_grad():
        peer.weight.uniform_(0.5, 1.5)
        ours.weight.copy_(peer.weight)
    return torch, x, ours, peer


def _no_grad(torch, fn):
    def run():
        with torch.no_grad():
            return fn()

    return run


def _register_dtype(dtype_name: str) -> None:
    @register(
        f"torch.eager.forward[{dtype_name}]",
        baseline="torch.nn.RMSNorm forward",
        target=0.45,
        requires=("torch",),
    )
    def _vs_torch():
        torch, x, ours, peer = _setup(dtype_name)
        return _no_grad(torch, lambda: ours(x)), _no_grad(torch, lambda: peer(x))

    @register(
        f"torch.eager.forward-vs-clone[{dtype_name}]",
        baseline="x.clone()",
        target=1.3,
        requires=("torch",),
    )
    def _vs_clone():
        torch, x, ours, _ = _setup(dtype_name)
        return _no_grad(torch, lambda: ours(x)), _no_grad(torch, x.clone)

    @register(
        f"torch.eager.forward+backward[{dtype_name}]",
        baseline="torch.nn.RMSNorm forward+backward",
        target=0.7,
        requires=("torch",),
    )
    def _fwd_bwd():
        torch, x, ours, peer = _setup(dtype_name)
        xg = x.clone().requires_grad_()
        dy = torch.randn_like(x)

        def step(module):
            return lambda: torch.autograd.grad(module(xg), (xg, module.weight), dy)

        return step(ours), step(peer)

    @register(
        f"torch.script.forward[{dtype_name}]",
        baseline="our eager forward",
        target=1.1,
        requires=("torch",),
    )
    def _scripted():
        torch, x, ours, _ = _setup(dtype_name)
        scripted = torch.jit.script(ours)
        return _no_grad(torch, lambda: scripted(x)), _no_grad(torch, lambda: ours(x))


for _name in DTYPES:
    _register_dtype(_name)


@register(
    "torch.eager.nchw-over-c[float32 32x128x32x32]",
    baseline="permute + torch.nn.RMSNorm + permute back",
    target=1.0,
    requires=("torch",),
)
def _nchw():
    import torch

    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch import RMSNorm

    x = torch.randn(32, 128, 32, 32)
    ours = RMSNorm.from_spec(RMSNormSpec.preset("torch", axes=(1,)), 128)
    peer = torch.nn.RMSNorm(128)

    def permuted():
        return peer(x.permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2).contiguous()

    return _no_grad(torch, lambda: ours(x)), _no_grad(torch, permuted)
