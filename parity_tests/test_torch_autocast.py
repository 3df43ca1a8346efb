"""Under torch.autocast the spec still decides every dtype.

Decision: autocast changes nothing inside RMSNorm. Its statistic is float32
by the spec already, and its output dtype follows the spec from the input's
dtype (a float32 input inside a bfloat16 autocast region stays float32, as
torch.nn.RMSNorm's does: norms sit on autocast's float32 side on CPU).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("rows", [3, 64], ids=["graph-path", "blocked-path"])
@pytest.mark.parametrize("preset", ["torch", "llama", "gemma"])
def test_autocast_changes_nothing(dtype, rows, preset):
    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), 1024)
    x = torch.randn(rows, 1024).to(dtype)
    with torch.no_grad():
        outside = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = m(x)
    assert inside.dtype == outside.dtype
    assert torch.equal(inside, outside)


def test_autocast_gradients_unchanged():
    m = RMSNorm(512)
    x = torch.randn(70, 512, requires_grad=True)
    dy = torch.randn(70, 512)
    g_out = torch.autograd.grad(m(x), (x, m.weight), dy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32
    g_in = torch.autograd.grad(y, (x, m.weight), dy)
    for a, b in zip(g_out, g_in, strict=True):
        assert torch.equal(a, b)
