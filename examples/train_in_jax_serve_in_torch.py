"""Train in JAX/Flax, serve in PyTorch: the bridge end to end.

A small model with three RMSNorm layers of different conventions (Gemma's
``1 + w`` over the features, a Llama-style norm over the *sequence* axis -- a
non-trailing axis -- and a T5-style one with a bias) is trained with optax on
synthetic data in Flax. The norm weights travel through a neutral checkpoint
(``rmsnorm_core.save``/``load``) into the same model written in PyTorch; the
Dense kernels are copied alongside. The torch model is exported to TorchScript
and ONNX, and the four outputs (Flax, torch eager, TorchScript, ONNX Runtime)
are compared on a batch of another size than the export sample.

Run: ``python examples/train_in_jax_serve_in_torch.py [--steps 300]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
import optax
import torch

from rmsnorm_core import RMSNormSpec, load, save
from rmsnorm_flax import layers_from_linen, linen
from rmsnorm_torch import RMSNorm, load_into_module

T, D = 12, 32  # sequence length, features
SPECS = {
    "norm_in": RMSNormSpec.preset("gemma"),  # over features, (1 + w)
    "norm_seq": RMSNormSpec.preset("llama", axes=(1,)),  # over the sequence axis
    "norm_out": RMSNormSpec.preset("t5", use_bias=True),
}


class FlaxModel(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        h = fnn.Dense(D, name="dense_in")(x)
        h = linen.RMSNorm(spec=SPECS["norm_in"], name="norm_in")(h)
        h = jnp.tanh(fnn.Dense(D, name="dense_mid")(h))
        h = linen.RMSNorm(spec=SPECS["norm_seq"], name="norm_seq")(h)
        h = linen.RMSNorm(spec=SPECS["norm_out"], name="norm_out")(h)
        return fnn.Dense(1, name="dense_out")(h)


class TorchModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense_in = torch.nn.Linear(D, D)
        self.norm_in = RMSNorm.from_spec(SPECS["norm_in"], D)
        self.dense_mid = torch.nn.Linear(D, D)
        self.norm_seq = RMSNorm.from_spec(SPECS["norm_seq"], T)
        self.norm_out = RMSNorm.from_spec(SPECS["norm_out"], D)
        self.dense_out = torch.nn.Linear(D, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_in(self.dense_in(x))
        h = self.norm_seq(torch.tanh(self.dense_mid(h)))
        return self.dense_out(self.norm_out(h))


def train(steps: int) -> tuple[FlaxModel, dict]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((256, T, D)), jnp.float32)
    y = jnp.sin(x.sum(axis=-1, keepdims=True)) * 0.5
    model = FlaxModel()
    variables = model.init(jax.random.key(0), x[:2])
    opt = optax.adam(3e-3)
    state = opt.init(variables["params"])

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(
            lambda p: jnp.mean((model.apply({"params": p}, xb) - yb) ** 2)
        )(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    params = variables["params"]
    for i in range(steps):
        batch = slice((i * 32) % 256, (i * 32) % 256 + 32)
        params, state, loss = step(params, state, x[batch], y[batch])
        if i % 100 == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss):.4f}")
    return model, {"params": params}


def to_torch(model: FlaxModel, variables: dict, folder: Path) -> TorchModel:
    sample = jnp.zeros((2, T, D))
    checkpoint = folder / "norms.safetensors"
    save(checkpoint, layers_from_linen(model, variables, sample))  # specs travel with weights
    torch_model = TorchModel()
    load_into_module(torch_model, load(checkpoint))
    params = variables["params"]
    with torch.no_grad():
        for name in ("dense_in", "dense_mid", "dense_out"):  # Dense kernels are [in, out]
            linear = getattr(torch_model, name)
            linear.weight.copy_(torch.from_numpy(np.array(params[name]["kernel"]).T.copy()))
            linear.bias.copy_(torch.from_numpy(np.array(params[name]["bias"])))
    return torch_model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model, variables = train(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch_model = to_torch(model, variables, folder)
        sample = torch.zeros(2, T, D)
        scripted = torch.jit.script(torch_model)
        with warnings.catch_warnings():  # the TorchScript-based exporter's deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                torch_model,
                (sample,),
                str(folder / "model.onnx"),
                dynamo=False,
                opset_version=18,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            )
        session = ort.InferenceSession(
            str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        x = np.random.default_rng(1).standard_normal((7, T, D)).astype(np.float32)
        outputs = {"flax": np.asarray(model.apply(variables, x))}
        with torch.no_grad():
            outputs["torch eager"] = torch_model(torch.from_numpy(x)).numpy()
            outputs["TorchScript"] = scripted(torch.from_numpy(x)).numpy()
        outputs["ONNX Runtime"] = session.run(None, {"x": x})[0]
    worst = 0.0
    for name, out in outputs.items():
        err = float(np.max(np.abs(out - outputs["flax"])))
        worst = max(worst, err)
        print(f"{name:13s} max |y - y_flax| = {err:.2e}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
