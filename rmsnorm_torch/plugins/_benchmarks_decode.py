"""The decode-shape cases of ``rmsnorm bench``: the per-call cost users pay in LLM decoding.

Inputs [1, 4096] and [8, 4096], float32 and bfloat16, one thread, parameters
in the input's dtype (a model cast with ``.to(dtype)``), against the module
each preset replaces: ``torch.nn.RMSNorm`` (``torch`` preset) and Hugging
Face's ``LlamaRMSNorm`` (``llama`` preset; skipped without ``transformers``).
Each callable is one call (a call takes microseconds: the bench's blocks hold
thousands); one thread and the grad mode are set once around the whole timing
(``Benchmark.around``), not per call. Forward cases run under ``torch.no_grad()``,
forward+backward is ``torch.autograd.grad`` of the output for x and the weight.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, List, Tuple

from rmsnorm_core.backends import Benchmark

SHAPES = ((1, 4096), (8, 4096))
DTYPES = ("float32", "bfloat16")


def _llama_peer(n: int) -> Any:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    return LlamaRMSNorm(n, eps=1e-6)


def _torch_peer(n: int) -> Any:
    import torch

    return torch.nn.RMSNorm(n)


def _pair(preset: str, shape: Tuple[int, int], dtype_name: str) -> Tuple[Any, Any, Any]:
    import torch

    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch.nn._modules import RMSNorm

    dtype = getattr(torch, dtype_name)
    n = shape[-1]
    peer = (_torch_peer if preset == "torch" else _llama_peer)(n).to(dtype)
    ours = RMSNorm.from_spec(RMSNormSpec.preset(preset), n).to(dtype)
    with torch.no_grad():
        peer.weight.uniform_(0.5, 1.5)
        ours.weight.copy_(peer.weight)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    return x, ours, peer


def _one_thread(grad: bool) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """What a decode case is timed under: one thread, grad mode ``grad`` (both restored)."""

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.set_grad_enabled(grad):
                yield
        finally:
            torch.set_num_threads(threads)

    return around


def _case(preset: str, shape: Tuple[int, int], dtype: str, backward: bool) -> Benchmark:
    def setup() -> Any:
        import torch

        x, ours, peer = _pair(preset, shape, dtype)
        if not backward:
            return (lambda: ours(x)), (lambda: peer(x))
        xg, dy = x.clone().requires_grad_(), torch.randn_like(x)

        def step(m: Any) -> Callable[[], Any]:
            return lambda: torch.autograd.grad(m(xg), (xg, m.weight), dy)

        return step(ours), step(peer)

    peer = "torch.nn.RMSNorm" if preset == "torch" else "transformers LlamaRMSNorm"
    what = "forward+backward" if backward else "forward"
    requires = ("torch",) if preset == "torch" else ("torch", "transformers")
    name = f"torch.decode.{preset}.{what}[{dtype} {shape[0]}x{shape[1]}]"
    # torch.nn.RMSNorm is one op behind one Python frame: ours may cost 5% more a call;
    # Hugging Face's norm is six ops, which ours must not be slower than
    target = 1.05 if preset == "torch" else 1.0
    around = _one_thread(backward)
    return Benchmark(name, f"{peer} {what}, 1 thread", setup, target, requires, around)


def decode_benchmarks() -> List[Benchmark]:
    """Every decode-shape case: 2 presets x 2 shapes x 2 dtypes x (forward, +backward)."""
    return [
        _case(preset, shape, dtype, backward)
        for preset in ("torch", "llama")
        for backward in (False, True)
        for dtype in DTYPES
        for shape in SHAPES
    ]
