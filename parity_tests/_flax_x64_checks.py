"""``jax_enable_x64`` checks of ``test_flax_x64_vmap.py``, run in a subprocess (the flag
must be set before jax is imported; the rest of the suite runs without it).

Under x64 flax's statistic is in ``promote(dtype or x.dtype, float32)`` and the
product in the wider of that and x's dtype: our linen and nnx layers must give
flax's output dtype, ``y``, ``dx`` and ``dscale`` bit for bit. Prints ``PASS name``
per check that passes, ``FAIL name: why`` otherwise.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402

# (name, x dtype, flax fields)
CASES = [
    ("f64-dtype-f32", "float64", {"dtype": jnp.float32}),
    ("f32-dtype-f64", "float32", {"dtype": jnp.float64}),
    ("bf16-dtype-f64", "bfloat16", {"dtype": jnp.float64}),
    ("f32-param-f64", "float32", {"param_dtype": jnp.float64}),
    ("f64", "float64", {}),
    # a NumPy float64 epsilon is a typed scalar: under x64 flax's statistic is float64
    ("f32-eps-np-f64", "float32", {"epsilon": np.float64(1e-3)}),
    ("bf16-eps-np-f64", "bfloat16", {"epsilon": np.float64(1e-3)}),
]


def _cotangent(y):
    return jax.random.normal(jax.random.key(5), y.shape).astype(y.dtype)


def _linen(inputs):
    """Per case ``(ours, flax's)``, each ``(y, dx, dscale)``: every case under ONE jit
    (XLA's compilation costs ~0.9 s a program here, whatever its size)."""

    def grads(cls, fields, x, s):
        y, pull = jax.vjp(lambda x, s: cls(**fields).apply({"params": {"scale": s}}, x), x, s)
        return (y, *pull(_cotangent(y)))

    def every(xs, scales):
        return [
            tuple(grads(cls, fields, x, s) for cls in (ours_linen.RMSNorm, fnn.RMSNorm))
            for (fields, _), x, s in zip(inputs, xs, scales, strict=True)
        ]

    return jax.jit(every)([i[1][0] for i in inputs], [i[1][1] for i in inputs])


def _nnx(inputs):
    """As :func:`_linen`, for nnx layers: every case through one ``nnx.jit``."""

    def layer(cls, fields, scale):
        layer = cls(8, rngs=nnx.Rngs(0), **fields)
        layer.scale[...] = scale
        return layer

    def grads(layer, x):
        y, pull = jax.vjp(lambda m, x: m(x), layer, x)
        dm, dx = pull(_cotangent(y))
        return y, dx, dm.scale[...]

    layers = [
        tuple(layer(cls, fields, scale) for cls in (ours_nnx.RMSNorm, nnx.RMSNorm))
        for fields, (_, scale) in inputs
    ]

    def every(layers, xs):
        return [tuple(grads(m, x) for m in pair) for pair, x in zip(layers, xs, strict=True)]

    return nnx.jit(every)(layers, [i[1][0] for i in inputs])


def _why_not_equal(got, want) -> str | None:
    for name, a, b in zip(("y", "dx", "dscale"), got, want, strict=True):
        if a.dtype != b.dtype:
            return f"{name}: dtype {a.dtype} != flax's {b.dtype}"
        if not bool(jnp.array_equal(a, b)):
            return f"{name}: {int(jnp.sum(a != b))} of {a.size} elements differ"
    return None


def _inputs(dtype, fields):
    x = (jax.random.normal(jax.random.key(3), (2, 3, 8)) * 3).astype(dtype)
    pdt = fields.get("param_dtype", jnp.float32)
    return x, jax.random.uniform(jax.random.key(1), (8,), minval=0.5, maxval=1.5).astype(pdt)


def main() -> None:
    inputs = [(fields, _inputs(dtype, fields)) for _, dtype, fields in CASES]
    for api, run in (("linen", _linen), ("nnx", _nnx)):
        try:
            results = run(inputs)
            whys = [_why_not_equal(got, want) for got, want in results]
        except Exception as err:  # noqa: BLE001 - reported to the parent test, every case
            whys = [f"{type(err).__name__}: {err}"] * len(CASES)
        for (name, _, _), why in zip(CASES, whys, strict=True):
            print(f"PASS {api}-{name}" if why is None else f"FAIL {api}-{name}: {why}", flush=True)


if __name__ == "__main__":
    main()
