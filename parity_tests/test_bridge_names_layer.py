"""Every bridge refusal of a norm no spec describes names the layer (its module path):
our linen layer without ``spec=`` holds flax's fields and is refused as flax's own is
(an array ``epsilon``, ``reduction_axes=()``, a complex ``param_dtype``,
``force_float32_reductions=False``)."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")

import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

from rmsnorm_core import RMSNormError  # noqa: E402
from rmsnorm_flax import layers_from_linen, layers_from_nnx, linen, load_into_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402
from rmsnorm_flax.interop import _bridge  # noqa: E402

X = jnp.linspace(-1.0, 1.0, 8).reshape(2, 4)

FIELDS = [
    ({"epsilon": jnp.array(1e-3)}, r"epsilon of type ArrayImpl"),
    ({"reduction_axes": ()}, r"reduction_axes=\(\)"),
    ({"param_dtype": jnp.complex64}, r"param_dtype=complex64"),
    ({"force_float32_reductions": False}, r"force_float32_reductions=False"),
]
IDS = ["eps-array", "axes-empty", "param-complex64", "force32-false"]


class _Model(fnn.Module):
    norm_type: type
    fields: dict

    @fnn.compact
    def __call__(self, x):
        return self.norm_type(name="norm", **self.fields)(x)


def _readers(model, variables):
    yield lambda: layers_from_linen(model, variables, X, preset_for_flax="flax")
    yield lambda: load_into_linen(model, variables, {}, X)


@pytest.mark.parametrize("fields,why", FIELDS, ids=IDS)
@pytest.mark.parametrize("norm_type", [linen.RMSNorm, fnn.RMSNorm], ids=["ours", "flax"])
def test_linen_refusal_names_the_layer_and_the_field(norm_type, fields, why):
    model = _Model(norm_type, fields)
    variables = model.init(jax.random.key(0), X)
    for read in _readers(model, variables):
        with pytest.raises(RMSNormError, match=rf"^layer 'norm': {why}: no spec describes"):
            read()


@pytest.mark.parametrize("fields,why", FIELDS[:3], ids=IDS[:3])  # nnx has no force32 field
@pytest.mark.parametrize("norm_type", [ours_nnx.RMSNorm, fnnx.RMSNorm], ids=["ours", "flax"])
def test_nnx_refusal_names_the_layer_and_the_field(norm_type, fields, why):
    model = fnnx.Dict(norm=norm_type(4, rngs=fnnx.Rngs(0), **fields))
    with pytest.raises(RMSNormError, match=rf"^layer 'norm': {why}: no spec describes"):
        layers_from_nnx(model, preset_for_flax="flax")
    with pytest.raises(RMSNormError, match=rf"^layer 'norm': {why}: no spec describes"):
        _bridge._nnx_norms(model, flax_too=True)
