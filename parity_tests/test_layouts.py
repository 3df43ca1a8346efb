"""Tensors of a layout no kernel computes (sparse, nested) are refused by name at every
torch entry, cold or after a warm call at the same rank and dtype, and so is a sparse
weight assigned after a warm call at each kernel's size: ``RMSNormTypeError`` naming the
argument and its layout, also a ``NotImplementedError`` (a ``RuntimeError``) like torch's
own error for them (``torch.nn.RMSNorm`` raises one from ``aten::mean.dim`` for a sparse
input and an internal ``RuntimeError`` for a nested one)."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from _sizes import MIDDLE_SIZE  # noqa: E402

from rmsnorm_core import RMSNormSpec, RMSNormTypeError  # noqa: E402
from rmsnorm_torch import ResidualRMSNorm, RMSNorm, rms_norm, rms_norm_residual  # noqa: E402
from rmsnorm_torch.functional import rms_norm as dropin  # noqa: E402
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT  # noqa: E402

N = 8


# (id, what the message says); the tensors are made inside the tests, never at
# collection: a jagged tensor imports triton, which must first see the TRITON_INTERPRET
# the Triton tests set (_triton_setup.py)
LAYOUTS = [
    ("sparse-coo", r"got layout torch\.sparse_coo; convert it first"),
    ("sparse-csr", r"got layout torch\.sparse_csr; convert it"),
    ("nested", r"got a nested tensor; normalize each"),
    ("jagged", r"got a nested tensor; normalize each"),
]


def _tensor(layout: str):
    dense = torch.randn(3, 5, N)
    parts = [torch.randn(2, N), torch.randn(4, N)]
    # torch warns that its sparse CSR and nested tensors are in beta or prototype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if layout == "sparse-coo":
            return dense.to_sparse()
        if layout == "sparse-csr":
            return dense[0].to_sparse_csr()
        return torch.nested.nested_tensor(
            parts, layout=torch.jagged if layout == "jagged" else None
        )


def _warm(module, x):
    module(torch.randn([2] * (x.dim() - 1) + [N], dtype=x.dtype))  # a dense call first
    return module(x)


CALLS = [
    ("module", "x", lambda x: RMSNorm(N)(x)),
    ("module-warm", "x", lambda x: _warm(RMSNorm(N), x)),
    (
        "llama-module-warm",
        "x",
        lambda x: _warm(RMSNorm.from_spec(RMSNormSpec.preset("llama"), N), x),
    ),
    ("functional", "x", lambda x: rms_norm(x, RMSNormSpec())),
    ("dropin", "input", lambda x: dropin(x, [N])),
    ("residual-x", "x", lambda x: ResidualRMSNorm(N)(x, torch.zeros(3, 5, N))),
    ("residual-r", "residual", lambda x: ResidualRMSNorm(N)(torch.zeros(3, 5, N), x)),
    ("rms_norm_residual", "x", lambda x: rms_norm_residual(x, torch.zeros(3, 5, N), RMSNormSpec())),
]


@pytest.mark.parametrize("call,name", [c[2:0:-1] for c in CALLS], ids=[c[0] for c in CALLS])
@pytest.mark.parametrize("layout,match", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_a_tensor_of_another_layout_is_refused_by_name(call, name, layout, match):
    x = _tensor(layout)
    with pytest.raises(RMSNormTypeError, match=rf"^{name} must be a dense tensor .*{match}") as e:
        call(x)
    assert isinstance(e.value, NotImplementedError)


@pytest.mark.parametrize(
    "rows", [3, MIDDLE_SIZE // N, FUSED_LIMIT // N], ids=["small", "middle", "big"]
)
@pytest.mark.parametrize("preset", ["torch", "llama"])
def test_a_sparse_weight_assigned_after_a_warm_call_is_refused_by_name(rows, preset):
    module = RMSNorm.from_spec(RMSNormSpec.preset(preset), N)
    x = torch.randn(rows, N)
    module(x)
    module.weight = torch.nn.Parameter(torch.rand(N).to_sparse())
    with pytest.raises(RMSNormTypeError, match=r"^weight must be a dense tensor .*sparse_coo"):
        module(x)
    peer = torch.nn.RMSNorm(N)  # torch's module refuses it too, with a RuntimeError
    peer.weight = torch.nn.Parameter(torch.rand(N).to_sparse())
    with pytest.raises(RuntimeError):
        peer(x)


_SPARSE = {
    "csr": lambda x: x.to_sparse_csr(),
    "csc": lambda x: x.to_sparse_csc(),
    "bsr": lambda x: x.to_sparse_bsr((1, 2)),
    "coo": lambda x: x.to_sparse(),
}


@pytest.mark.parametrize("rows", [1, MIDDLE_SIZE // 4096, FUSED_LIMIT // 4096], ids=str)
@pytest.mark.parametrize("layout", list(_SPARSE))
def test_a_sparse_input_at_each_kernels_size_is_refused_cold_and_warm(rows, layout):
    # a compressed sparse tensor has no is_contiguous(), which the size class reads
    x = torch.randn(rows, 4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: sparse CSR support is beta
        sparse = _SPARSE[layout](x)
    warm = RMSNorm(4096)
    warm(x)
    for module in (RMSNorm(4096), warm):
        with pytest.raises(RMSNormTypeError, match=r"^x must be a dense tensor .*sparse"):
            module(sparse)
