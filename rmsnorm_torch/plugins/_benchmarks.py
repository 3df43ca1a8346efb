"""The torch cases of ``rmsnorm bench``: eager, residual, TorchScript, torch.compile.

Input [4096, 4096] on the CPU. Forward cases run under ``torch.no_grad()``;
forward+backward is ``torch.autograd.grad`` of the output with a fixed
cotangent, for x and the weight.
"""

from __future__ import annotations

from typing import Any, Callable, List

from rmsnorm_core.backends import Benchmark, Sweep

SIZE = 4096
DTYPES = ("float32", "bfloat16", "float16")
REQUIRES = ("torch",)


def _setup(dtype_name: str, rows: int = SIZE, cols: int = SIZE) -> Any:
    import torch

    from rmsnorm_torch.nn._modules import RMSNorm

    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    x = torch.randn(rows, cols).to(dtype)
    ours, peer = RMSNorm(cols, dtype=dtype), torch.nn.RMSNorm(cols, dtype=dtype)
    with torch.no_grad():
        peer.weight.uniform_(0.5, 1.5)
        ours.weight.copy_(peer.weight)
    return torch, x, ours, peer


def _no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
    import torch

    def run() -> Any:
        with torch.no_grad():
            return fn()

    return run


def _eager(dtype: str) -> List[Benchmark]:
    def vs_torch() -> Any:
        _, x, ours, peer = _setup(dtype)
        return _no_grad(lambda: ours(x)), _no_grad(lambda: peer(x))

    def vs_clone() -> Any:
        _, x, ours, _ = _setup(dtype)
        return _no_grad(lambda: ours(x)), _no_grad(x.clone)

    def fwd_bwd() -> Any:
        torch, x, ours, peer = _setup(dtype)
        xg, dy = x.clone().requires_grad_(), torch.randn_like(x)

        def step(m: Any) -> Callable[[], Any]:
            return lambda: torch.autograd.grad(m(xg), (xg, m.weight), dy)

        return step(ours), step(peer)

    def scripted() -> Any:
        torch, x, ours, _ = _setup(dtype)
        script = torch.jit.script(ours)
        return _no_grad(lambda: script(x)), _no_grad(lambda: ours(x))

    # one pass over memory, as a copy makes; torch's half-precision forward makes several
    vs_peer = {"float32": 0.45, "bfloat16": 0.2, "float16": 0.2}[dtype]
    fwd_bwd_peer = {"float32": 0.33, "bfloat16": 0.22, "float16": 0.22}[dtype]
    cases = [
        ("torch.eager.forward", "torch.nn.RMSNorm forward", vs_torch, vs_peer),
        ("torch.eager.forward-vs-clone", "x.clone() (memory floor)", vs_clone, 1.15),
        (
            "torch.eager.forward+backward",
            "torch.nn.RMSNorm forward+backward",
            fwd_bwd,
            fwd_bwd_peer,
        ),  # fmt: skip
        ("torch.script.forward", "our eager forward", scripted, 1.1),
    ]
    return [Benchmark(f"{n}[{dtype}]", b, f, t, REQUIRES) for n, b, f, t in cases]


def _residual(dtype: str) -> Benchmark:
    def setup() -> Any:
        torch, x, ours, _ = _setup(dtype)
        from rmsnorm_torch.nn._residual_module import ResidualRMSNorm

        fused = ResidualRMSNorm(SIZE, dtype=x.dtype)
        fused.weight = ours.weight
        r = torch.randn(SIZE, SIZE).to(x.dtype)
        return _no_grad(lambda: fused(x, r)), _no_grad(lambda: ours(x + r))

    name = f"torch.eager.residual[{dtype}]"
    return Benchmark(name, "x + r, then our RMSNorm", setup, 0.75, REQUIRES)


def _compiled(dtype: str) -> Benchmark:
    def setup() -> Any:
        torch, x, ours, peer = _setup(dtype)
        from rmsnorm_torch.export._compile import COMPILE_OPTIONS

        torch._dynamo.reset()
        c_ours = torch.compile(ours, fullgraph=True, options=COMPILE_OPTIONS)
        c_peer = torch.compile(peer, fullgraph=True)
        return _no_grad(lambda: c_ours(x)), _no_grad(lambda: c_peer(x))

    name = f"torch.compile.forward[{dtype}]"
    return Benchmark(name, "torch.compile(torch.nn.RMSNorm)", setup, 1.0, REQUIRES)


def _nchw() -> Benchmark:
    def setup() -> Any:
        import torch

        from rmsnorm_core import RMSNormSpec
        from rmsnorm_torch.nn._modules import RMSNorm

        x = torch.randn(32, 128, 32, 32)
        ours = RMSNorm.from_spec(RMSNormSpec.preset("torch", axes=(1,)), 128)
        peer = torch.nn.RMSNorm(128)

        def permuted() -> Any:
            return peer(x.permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2).contiguous()

        return _no_grad(lambda: ours(x)), _no_grad(permuted)

    name = "torch.eager.nchw-over-c[float32 32x128x32x32]"
    return Benchmark(name, "permute + torch.nn.RMSNorm + permute back", setup, 1.0, REQUIRES)


def benchmarks() -> List[Benchmark]:
    """Every torch case (decode shapes: ``_benchmarks_decode``; ONNX Runtime:
    ``_benchmarks_onnx``)."""
    from rmsnorm_torch.plugins._benchmarks_decode import decode_benchmarks
    from rmsnorm_torch.plugins._benchmarks_onnx import onnx_benchmarks

    out: List[Benchmark] = [b for d in DTYPES for b in _eager(d)] + decode_benchmarks()
    out += [_residual(d) for d in ("float32", "bfloat16")]
    out += [_compiled(d) for d in ("float32", "bfloat16")]
    return out + [_nchw()] + onnx_benchmarks()


def sweeps() -> List[Sweep]:
    """Our eager forward and torch.nn.RMSNorm's at row lengths 64 to 65536."""

    def setup(rows: int, cols: int, dtype: str) -> Any:
        _, x, ours, peer = _setup(dtype, rows, cols)
        return _no_grad(lambda: ours(x)), _no_grad(lambda: peer(x))

    return [Sweep("torch.eager.forward", "torch.nn.RMSNorm", setup, REQUIRES)]
