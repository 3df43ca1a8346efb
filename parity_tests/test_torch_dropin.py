"""rmsnorm_torch.RMSNorm as a drop-in for torch.nn.RMSNorm."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_core import FLOAT32_EPS, RMSNormError, RMSNormSpec, RMSNormTypeError, assert_close  # noqa: E402
from rmsnorm_torch import RMSNorm  # noqa: E402

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _pair(shape, dtype, **kwargs):
    torch.manual_seed(0)
    peer = torch.nn.RMSNorm(shape, dtype=dtype, **kwargs)
    with torch.no_grad():
        if peer.weight is not None:
            peer.weight.uniform_(0.5, 1.5)
    ours = RMSNorm(shape, dtype=dtype, **kwargs)
    ours.load_state_dict(peer.state_dict())
    return ours, peer


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "shape,x_shape,kwargs",
    [
        (64, (3, 5, 64), {}),
        ((4, 16), (2, 4, 16), {}),
        (32, (7, 32), {"eps": 1e-5}),
        (32, (7, 32), {"elementwise_affine": False}),
        (2048, (40, 2048), {}),
    ],
    ids=["trailing", "two-dims", "eps", "no-affine", "blocked-kernel"],
)
def test_outputs_equal_torch(dtype, shape, x_shape, kwargs):
    ours, peer = _pair(shape, dtype, **kwargs)
    x = (torch.randn(x_shape) * 4).to(dtype)
    y, expected = ours(x), peer(x)
    assert y.dtype == expected.dtype == dtype
    assert_close(
        y.detach().float().numpy(),
        expected.detach().float().numpy(),
        str(dtype).split(".")[-1],
        name=f"drop-in {dtype}",
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gradients_equal_torch(dtype):
    ours, peer = _pair(256, dtype)
    x = (torch.randn(300, 256) * 2).to(dtype)
    dy = torch.randn(300, 256).to(dtype)
    grads = []
    for m in (ours, peer):
        xg = x.clone().requires_grad_()
        grads.append(torch.autograd.grad(m(xg), (xg, m.weight), dy))
    for got, want in zip(grads[0], grads[1], strict=True):
        assert_close(
            got.float().numpy(),
            want.float().numpy(),
            str(dtype).split(".")[-1],
            gradient=True,
            name="drop-in grad",
        )


def test_same_defaults_and_state_dict_keys():
    ours, peer = RMSNorm(8), torch.nn.RMSNorm(8)
    assert ours.eps is None and peer.eps is None  # None kept, as torch keeps it
    assert ours.spec.eps == FLOAT32_EPS  # what torch resolves None to in float32
    assert list(ours.state_dict()) == list(peer.state_dict()) == ["weight"]
    assert torch.equal(ours.weight, peer.weight)
    assert list(RMSNorm(8, bias=True).state_dict()) == ["weight", "bias"]
    assert list(RMSNorm(8, elementwise_affine=False).state_dict()) == []
    assert (
        ours.normalized_shape == peer.normalized_shape == (8,) and ours.elementwise_affine is True
    )


def test_from_spec_nchw_over_c():
    spec = RMSNormSpec.preset("gemma", axes=(1,))
    m = RMSNorm.from_spec(spec, 6)
    assert m.spec == spec and m.weight.shape == (6,) and torch.all(m.weight == 0)
    x = torch.randn(2, 6, 3, 3)
    expected = torch.nn.functional.rms_norm(x.permute(0, 2, 3, 1), [6], None, 1e-6).permute(
        0, 3, 1, 2
    )
    assert torch.allclose(m(x), expected, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (
            {"normalized_shape": 8, "eps": 1e-5, "spec": RMSNormSpec()},
            RMSNormError,
            r"eps=1e-05 \(spec.eps=1e-06\) conflict with the spec",
        ),
        (
            {"normalized_shape": 8, "elementwise_affine": False, "spec": RMSNormSpec()},
            RMSNormError,
            r"elementwise_affine=False \(spec.use_scale=True\)",
        ),
        (
            {"normalized_shape": 8, "bias": True, "spec": RMSNormSpec()},
            RMSNormError,
            r"bias=True \(spec.use_bias=False\)",
        ),
        (
            {"normalized_shape": 8, "dtype": torch.float16, "spec": RMSNormSpec()},
            RMSNormError,
            r"dtype=torch.float16 \(spec.param_dtype='float32'\)",
        ),
        (
            {"normalized_shape": (2, 8), "spec": RMSNormSpec()},
            RMSNormError,
            r"normalized_shape=\(2, 8\) has 2 dims but the spec normalizes 1 axes",
        ),
        ({"normalized_shape": -3}, RMSNormError, r"normalized_shape=-3 is not accepted"),
        # without spec= a negative eps is torch's (test_torch_eps_attribute.py); no spec holds it
        (
            {"normalized_shape": 8, "eps": -1.0, "spec": RMSNormSpec()},
            RMSNormError,
            r"eps=-1\.0 \(spec\.eps=1e-06\) conflict with the spec",
        ),
        ({"normalized_shape": 8, "eps": "small"}, RMSNormTypeError, r"eps='small' is not accepted"),
        (
            {"normalized_shape": 8, "spec": {"eps": 1e-6}},
            RMSNormTypeError,
            r"spec must be an RMSNormSpec, got dict",
        ),
    ],
    ids=[
        "eps-conflict",
        "affine-conflict",
        "bias-conflict",
        "dtype-conflict",
        "shape-vs-axes",
        "negative-shape",
        "eps-negative-with-spec",
        "eps-string",
        "spec-dict",
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RMSNorm(**kwargs)


def test_wrong_input_shape_names_normalized_shape():
    with pytest.raises(
        RMSNormError,
        match=r"x has shape \(3, 8\) but normalized_shape=\(64,\) expects its axes \(-1,\) to have sizes \(64,\); got \(8,\)",
    ):
        RMSNorm(64)(torch.randn(3, 8))
