"""Named presets: the conventions users port models between.

Each line names the upstream implementation and version reproduced and its
exact formula, with ``f = float32``, ``x`` the input, ``w`` the weight and
``T`` the input dtype:

- ``torch``: ``torch.nn.RMSNorm`` / ``F.rms_norm`` (PyTorch 2.13), eps=None
  resolved as PyTorch does, to float32's machine epsilon for every input
  dtype (its opmath type): ``y = T(f(x) * rsqrt(mean(f(x)^2) + eps) *
  f(w))``, rounded once after the weight multiply.
- ``flax``: ``flax.linen.RMSNorm`` / ``flax.nnx.RMSNorm`` (Flax 0.12), eps
  1e-6: ``y = promote(T, w)(f(x) * (rsqrt(mean(f(x)^2) + eps) * w))``: the
  scale multiplies the inverse rms first (``scale_multiplies="inverse"``); a
  bfloat16 input with float32 scale gives a float32 output.
- ``llama``: Hugging Face ``LlamaRMSNorm`` (transformers 4.x), eps 1e-6:
  ``y = w * T(f(x) * rsqrt(mean(f(x)^2) + eps))``: rounded to the input
  dtype *before* the weight multiply, the product in the promoted dtype.
- ``gemma``: Hugging Face ``GemmaRMSNorm`` (transformers 4.x), eps 1e-6:
  ``y = T(f(x) * rsqrt(mean(f(x)^2) + eps) * (1 + f(w)))``: the offset is
  added and multiplied in float32, one rounding; weights start at zero.
- ``t5``: Hugging Face ``T5LayerNorm`` (transformers 4.x-5.x), eps 1e-6:
  ``y = w * T_w(x * rsqrt(mean(f(x)^2) + eps))``: the normalized value is
  rounded to the *weight's* dtype (a no-op for a float32 weight), the product
  taken and the output given in that dtype (a float32 input to bfloat16
  weights gives bfloat16).
- ``paper``: Zhang & Sennrich (2019), the authors' PyTorch code, eps 1e-8
  added to the rms, outside the root: ``y = w * x / (||x||/sqrt(n) + eps)``,
  computed in float32 here.
- ``olmo2``: Hugging Face ``Olmo2RMSNorm`` (transformers 4.47-5.x), eps 1e-6:
  ``y = T(f(w) * f(x) * rsqrt(mean(f(x)^2) + eps))``: the weight multiplies in
  float32 and the product is rounded once, to the input dtype (Liger-Kernel
  and the kernel hub map it to Llama's rounding, which differs in 1/4 of
  half-precision outputs; ``infer_spec`` measures it as this).
- ``onnx``: ONNX ``RMSNormalization`` (opset 23, stash_type=1), epsilon
  1e-5: ``Y = T(f(X) / sqrt(mean(f(X)^2) + eps)) * Scale``: cast before the
  scale; ``Y`` has the scale's type (promoted).

MaxText's ``RMSNorm`` (layers/normalizations.py) has no preset: on bfloat16
inputs with ``dtype = weight_dtype = bfloat16`` it computes ``llama`` with
``param_dtype="bfloat16"``, but it returns ``dtype`` whatever the input (a
float32 input comes out bfloat16), and with a float32 weight it rounds the
weight to ``dtype`` before the multiply (a gain formed in half precision);
no spec describes either, and ``infer_spec`` refuses it saying which
(``parity_tests/test_infer_spec.py``).
"""

from __future__ import annotations

from typing import Any

FLOAT32_EPS = 1.1920928955078125e-07
"""float32's machine epsilon: what torch.nn.RMSNorm uses for eps=None."""
FLOAT64_EPS = 2.220446049250313e-16
"""float64's machine epsilon: torch.nn.RMSNorm's eps=None on a float64 input."""

#: Each preset as the spec fields that differ from the defaults; the spec
#: module builds (and validates) them. Data only: this module imports nothing
#: of the package, so the spec can import it without a cycle.
PRESET_FIELDS: dict[str, dict[str, Any]] = {
    "torch": {"eps": FLOAT32_EPS},
    "flax": {"eps": 1e-6, "output_dtype": "promote", "scale_multiplies": "inverse"},
    "llama": {"eps": 1e-6, "cast_order": "before_scale", "output_dtype": "promote"},
    "gemma": {"eps": 1e-6, "scale_offset": 1.0},
    "t5": {"eps": 1e-6, "cast_order": "before_scale", "output_dtype": "param"},
    "paper": {"eps": 1e-8, "eps_placement": "outside"},
    "onnx": {"eps": 1e-5, "cast_order": "before_scale", "output_dtype": "promote"},
    "olmo2": {"eps": 1e-6},
}
