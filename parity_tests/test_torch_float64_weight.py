"""A float64 weight on a float32, bfloat16 or float16 input multiplies in float64, as torch's
type promotion does (``torch.nn.RMSNorm``, ``F.rms_norm``, Hugging Face's Llama and OLMo2
norms); Gemma's ``1 + w.float()`` stays float32. Bit for bit against the originals, forward
and gradients, on sizes on both sides of every kernel threshold.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _sizes import MIDDLE_SIZE

from rmsnorm_core import RMSNormSpec, dtype_plan
from rmsnorm_torch import RMSNorm
from rmsnorm_torch.functional import rms_norm
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
N = 1024
#: rows so that the call is below MIDDLE_SIZE, between it and FUSED_LIMIT, and above
ROWS = [4, MIDDLE_SIZE // N + 8, FUSED_LIMIT // N + 8]
#: torch's own op says it leaves its fused kernel for these calls (upstream's warning)
pytestmark = pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")


def _data(rows: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, N, generator=g).to(dtype)
    w = torch.empty(N, dtype=torch.float64).uniform_(0.5, 1.5, generator=g)
    dy = torch.randn(rows, N, generator=g).to(dtype)
    return x, w, dy


def _call(module: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor):
    x = x.clone().requires_grad_(True)
    y = module(x)
    return (y.detach(), *torch.autograd.grad(y, [x, module.weight], dy))


def _assert_same(theirs, ours, w, x, dy):
    """Both modules with weight ``w``: y, dx and dweight equal in dtype and bits."""
    with torch.no_grad():
        theirs.weight.copy_(w)
        ours.weight.copy_(w)
    for name, a, b in zip(
        "y dx dweight".split(), _call(theirs, x, dy), _call(ours, x, dy), strict=True
    ):
        assert a.dtype == b.dtype and torch.equal(a, b), name


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows", ROWS, ids=lambda r: f"numel{r * N}")
def test_module_float64_weight_is_torchs(rows, dtype):
    x, w, dy = _data(rows, dtype)
    theirs, ours = torch.nn.RMSNorm(N, dtype=torch.float64), RMSNorm(N, dtype=torch.float64)
    _assert_same(theirs, ours, w, x, dy)
    assert torch.equal(rms_norm(x, [N], w), F.rms_norm(x, [N], w))


def test_the_plan_says_where_the_scale_multiplies():
    torch_spec = RMSNormSpec.preset("torch")
    assert dtype_plan(torch_spec, "bfloat16", "float64").scale == "float64"
    assert dtype_plan(torch_spec, "bfloat16", "float32").scale == "float32"
    assert dtype_plan(RMSNormSpec.preset("gemma"), "float32", "float64").scale == "float32"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("preset", ["llama", "olmo2", "gemma"])
def test_hugging_face_norms_with_float64_weights(preset, dtype):
    modeling = {
        "llama": ("transformers.models.llama.modeling_llama", "LlamaRMSNorm"),
        "olmo2": ("transformers.models.olmo2.modeling_olmo2", "Olmo2RMSNorm"),
        "gemma": ("transformers.models.gemma.modeling_gemma", "GemmaRMSNorm"),
    }[preset]
    # imported here, not at collection: transformers imports triton (see conftest)
    cls = getattr(pytest.importorskip(modeling[0]), modeling[1])
    x, w, dy = _data(ROWS[0], dtype)
    theirs = cls(N, eps=1e-6).double()
    ours = RMSNorm.from_spec(RMSNormSpec.preset(preset, param_dtype="float64"), N)
    _assert_same(theirs, ours, w, x, dy)
