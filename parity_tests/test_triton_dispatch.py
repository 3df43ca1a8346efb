"""``use_kernel`` and the Triton custom ops: thread scope, refusals, compile, export.

Values are judged in ``test_triton_parity.py``; here: which path runs, what a
forced path that cannot run says, and that the ops stay traceable.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings

import pytest
from _triton_setup import DEVICE, torch

from rmsnorm_core import RMSNormError, RMSNormSpec
from rmsnorm_torch import RMSNorm, export_onnx, rms_norm, use_kernel
from rmsnorm_torch.kernels._kernel_choice import current_kernel
from rmsnorm_torch.kernels._triton_ops import decompositions, graph_forward, triton_forward

LLAMA = RMSNormSpec.preset("llama")


def _op_args(x, residual=None, partial_k=None):
    n = x.shape[-1]
    w = torch.rand(n, device=x.device) + 0.5
    return (x, residual, w, None, n, partial_k or n, 1e-6, False, True, x.dtype, x.dtype,
            x.dtype, 0.0, False)  # fmt: skip


def test_use_kernel_is_scoped_to_the_thread_and_restored():
    seen = {}

    def other():
        seen["other"] = current_kernel()

    with use_kernel("graph"):
        with use_kernel("blocked"):
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
            assert current_kernel() == "blocked"
        assert current_kernel() == "graph"
    assert current_kernel() == "auto" and seen["other"] == "auto"


@pytest.mark.parametrize("bad", ["cuda", "Triton", 3, None])
def test_use_kernel_names_what_it_accepts(bad):
    with pytest.raises(RMSNormError, match=r"name must be one of auto, graph, blocked, triton"):
        with use_kernel(bad):
            pass


@pytest.mark.parametrize(
    "spec,shape,dtype,words",
    [
        (LLAMA.replace(axes=(1,)), (4, 8, 3), torch.float32, "not the trailing ones"),
        (LLAMA, (4, 8), torch.float64, "float64; the kernel takes"),
        (LLAMA.replace(compute_dtype="float64"), (4, 8), torch.float32, "computes in float64"),
        (LLAMA, (0, 8), torch.float32, "x is empty"),
    ],
)
def test_forced_triton_says_why_it_cannot_run(spec, shape, dtype, words):
    x = torch.randn(shape, dtype=dtype, device=DEVICE)
    with use_kernel("triton"), pytest.raises(RMSNormError, match=words):
        rms_norm(x, spec)


def test_forced_blocked_runs_at_any_size_and_refuses_what_it_cannot():
    x = torch.randn(3, 40)
    with use_kernel("blocked"):
        y = rms_norm(x, LLAMA)  # far below the size the default choice needs
    with use_kernel("graph"):
        assert torch.allclose(y, rms_norm(x, LLAMA), rtol=1e-6, atol=1e-6)
    with use_kernel("blocked"), pytest.raises(RMSNormError, match="eps_outside=True"):
        rms_norm(x, RMSNormSpec.preset("paper"))


def _fresh(code: str, interpret: bool = False) -> str:
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


PRELUDE = (
    "import sys, torch\n"
    "from rmsnorm_core import RMSNormSpec, RMSNormError\n"
    "from rmsnorm_torch import rms_norm, use_kernel\n"
    "x = torch.randn(4, 16, requires_grad=True)\n"
)


@pytest.mark.skipif(DEVICE == "cuda", reason="the CPU default")
def test_cpu_calls_never_import_triton_and_need_the_interpreter_to_force_it():
    code = PRELUDE + (
        "rms_norm(x, RMSNormSpec.preset('llama')).sum().backward()\n"
        "print('triton' in sys.modules)\n"
        "try:\n"
        "    with use_kernel('triton'):\n"
        "        rms_norm(x, RMSNormSpec.preset('llama'))\n"
        "except RMSNormError as e:\n"
        "    print(e)\n"
    )
    imported, message = _fresh(code).splitlines()
    assert imported == "False"
    assert "x is on cpu" in message and "TRITON_INTERPRET=1" in message


def test_without_triton_the_default_works_and_forcing_it_says_install():
    code = (
        "import sys\nsys.modules['triton'] = None\n"
        + PRELUDE
        + (
            "y = rms_norm(x, RMSNormSpec.preset('gemma'))\n"
            "try:\n"
            "    with use_kernel('triton'):\n"
            "        rms_norm(x, RMSNormSpec.preset('gemma'))\n"
            "except RMSNormError as e:\n"
            "    print(e)\n"
        )
    )
    assert "triton is not installed (pip install -e '.[gpu]')" in _fresh(code, True)


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_custom_op_passes_torch_opcheck(residual):
    x = torch.randn(5, 24, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    r = torch.randn(5, 24, device=DEVICE, requires_grad=True) if residual else None
    args = list(_op_args(x, r, partial_k=17))
    args[2].requires_grad_(True)
    torch.library.opcheck(triton_forward, tuple(args))


def test_custom_op_compiles_fullgraph_and_decomposes_for_export():
    x = torch.randn(6, 32, device=DEVICE)
    args = _op_args(x)

    def f(t: torch.Tensor) -> torch.Tensor:
        return triton_forward(t, *args[1:])[0] * 2

    compiled = torch.compile(f, fullgraph=True)
    assert torch.equal(compiled(x), f(x))

    class Wrap(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return f(t)

    exported = torch.export.export(Wrap(), (x,))
    assert "rmsnorm_bridge.triton_forward" in str(exported.graph)
    with warnings.catch_warnings():  # torch 2.13's run_decompositions, about its own code
        warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", FutureWarning)
        plain = exported.run_decompositions(decompositions())
    assert "rmsnorm_bridge" not in str(plain.graph)
    expected = graph_forward(x, *args[1:])[0] * 2
    assert torch.allclose(plain.module()(x), expected, rtol=1e-6, atol=1e-6)
    assert torch.allclose(f(x), expected, rtol=1e-5, atol=1e-5)


def test_traced_code_records_the_graph_path_whatever_the_thread_forces(tmp_path):
    module = RMSNorm.from_spec(LLAMA, 16).eval()
    x = torch.randn(3, 16)
    with use_kernel("triton"):
        compiled = torch.compile(module, fullgraph=True)
        y = compiled(x)
        forced = export_onnx(module, tmp_path / "a.onnx", x, exporter="torchscript")
    plain = export_onnx(module, tmp_path / "b.onnx", x, exporter="torchscript")
    with use_kernel("graph"):
        assert torch.allclose(y, module(x), rtol=1e-6, atol=1e-6)
    assert forced.read_bytes() == plain.read_bytes()


def test_double_backward_through_the_triton_path_equals_the_graph_path():
    grads = []
    for kernel in ("triton", "graph"):
        x = torch.randn(4, 24, generator=torch.Generator().manual_seed(0)).to(DEVICE)
        x.requires_grad_(True)
        with use_kernel(kernel):
            y = rms_norm(x, RMSNormSpec.preset("paper"))
            (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
            (ggx,) = torch.autograd.grad(gx.sum(), x)
        grads.append((gx.detach(), ggx))
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
