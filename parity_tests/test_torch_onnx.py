"""ONNX export through both exporters, run in ONNX Runtime on other shapes."""

from __future__ import annotations

import numpy as np
import pytest
from _parity import PRESETS, check_forward, make_problem
from _sweep import covering, sweep

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from _torch_helpers import module_for, to_numpy, to_torch  # noqa: E402

from rmsnorm_core import RMSNormError, numpy_dtype  # noqa: E402
from rmsnorm_torch import export_onnx  # noqa: E402

ALL_OPSETS = [("torchscript", o) for o in range(17, 21)] + [("dynamo", o) for o in range(17, 24)]
MAIN_OPSETS = [("torchscript", 17), ("dynamo", 18), ("dynamo", 23)]
TRAILING = ("trailing", (2, 5, 64), (3, 9, 64), {})
NCHW = ("nchw-c", (2, 8, 3, 3), (4, 8, 5, 2), {"axes": (1,)})

CASES = (
    [
        (p, d, e, o, TRAILING)
        for p in PRESETS
        for d in ("float32", "float16", "bfloat16")
        for e, o in MAIN_OPSETS
    ]
    + [
        (p, d, e, o, TRAILING)
        for p in ("torch", "llama")
        for d in ("float32", "float16")
        for e, o in ALL_OPSETS
        if (e, o) not in MAIN_OPSETS
    ]
    + [
        (p, "float32", e, o, NCHW)
        for p in PRESETS
        for e, o in (("torchscript", 17), ("dynamo", 18))
    ]
)
# the default run: every preset in every dtype, every exporter and opset in each dtype it
# takes, and every case with every preset
CASES = sweep(CASES, covering(CASES, [(0, 1), (1, 2, 3), (0, 4)], lambda r: (*r[:4], r[4][0])))
IDS = [f"onnx-{d}-{p}-{e}{o}-{c[0]}" for p, d, e, o, c in CASES]


def _session(path, optimized=None):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_first_input(path, x):
    """The graph's first output on ``x``, fed to its first input whatever its name."""
    session = _session(path)
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _export(tmp_path, preset, dtype, exporter, opset, case):
    case_id, sample_shape, other_shape, overrides = case
    module = module_for(make_problem(preset, dtype, sample_shape, overrides))
    sample = to_torch(make_problem(preset, dtype, sample_shape, overrides, seed=3).x)
    path = export_onnx(module, tmp_path / "m.onnx", sample, opset=opset, exporter=exporter)
    other = make_problem(preset, dtype, other_shape, overrides, seed=1)
    other = type(other)(
        other.spec,
        other.x,
        to_numpy(module.weight) if module.weight is not None else None,
        to_numpy(module.bias) if module.bias is not None else None,
        other.dy,
    )
    return module, path, other


@pytest.mark.parametrize("preset,dtype,exporter,opset,case", CASES, ids=IDS)
def test_export_runs_in_onnxruntime_on_other_shapes(tmp_path, preset, dtype, exporter, opset, case):
    module, path, other = _export(tmp_path, preset, dtype, exporter, opset, case)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == opset
    feed = other.x.astype(np.float32) if dtype == "bfloat16" else other.x
    y = _session(path).run(None, {"x": feed})[0]
    with torch.no_grad():
        eager = module(to_torch(other.x))
    if dtype == "bfloat16":  # float32 boundary holding bfloat16 values (see _onnx.py)
        assert y.dtype == np.float32
        y = y.astype(numpy_dtype(str(eager.dtype).split(".")[-1]))
    name = f"onnx {exporter}{opset} {dtype} {preset} {case[0]}"
    check_forward(other, y, name=name)
    assert y.shape == tuple(eager.shape) and y.dtype == to_numpy(eager).dtype


FUSED = [
    ("torch", d, e, o)
    for d in ("float32", "float16")
    for e, o in (("torchscript", 17), ("torchscript", 18), ("dynamo", 17), ("dynamo", 18))
] + [  # flax's h * (inv * g) is exported in the order ONNX Runtime fuses too
    ("flax", d, e, o)
    for d in ("float32", "float16")
    for e, o in (("torchscript", 17), ("dynamo", 18))
]


@pytest.mark.parametrize(
    "preset,dtype,exporter,opset", FUSED, ids=[f"{p}-{e}{o}-{d}" for p, d, e, o in FUSED]
)
def test_onnxruntime_fuses_the_decomposed_graph(tmp_path, preset, dtype, exporter, opset):
    _, path, _ = _export(tmp_path, preset, dtype, exporter, opset, TRAILING)
    _session(path, optimized=tmp_path / "opt.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "SimplifiedLayerNormalization" in ops, ops
    assert "Pow" not in ops and "ReduceMean" not in ops, ops


@pytest.mark.parametrize(
    "preset,dtype,native",
    [
        ("torch", "float32", True),
        ("llama", "float16", True),
        ("onnx", "float16", True),
        ("torch", "float16", False),
        ("gemma", "float32", False),
        ("llama", "bfloat16", False),
        ("paper", "float32", False),
    ],
    ids=["torch-f32", "llama-f16", "onnx-f16", "after-scale-f16", "offset", "bf16", "eps-outside"],
)
def test_native_op_at_opset_23_only_where_semantics_equal(tmp_path, preset, dtype, native):
    # parameters in the input's dtype, as a half-precision deployment stores them
    case = (*TRAILING[:3], {"param_dtype": dtype})
    _, path, _ = _export(tmp_path, preset, dtype, "dynamo", 23, case)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ("RMSNormalization" in ops) == native, ops


def test_nothing_written_when_export_fails(tmp_path):
    from rmsnorm_torch import RMSNorm

    with pytest.raises(RMSNormError, match=r"x has shape \(2, 8\) but normalized_shape=\(16,\)"):
        export_onnx(RMSNorm(16), tmp_path / "m.onnx", torch.randn(2, 8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"exporter": "tflite"},
            r"exporter='tflite' is not accepted; expected one of 'dynamo', 'torchscript'",
        ),
        (
            {"exporter": "torchscript", "opset": 21},
            r"opset=21 is not accepted with exporter='torchscript'; expected an int from 17 to 20",
        ),
        (
            {"opset": 16},
            r"opset=16 is not accepted with exporter='dynamo'; expected an int from 17 to 23",
        ),
        ({"opset": "18"}, r"opset='18' is not accepted"),
    ],
    ids=["exporter", "ts-opset-21", "opset-16", "opset-str"],
)
def test_bad_export_arguments(tmp_path, kwargs, match):
    from rmsnorm_torch import RMSNorm

    with pytest.raises(RMSNormError, match=match):
        export_onnx(RMSNorm(16), tmp_path / "m.onnx", torch.randn(2, 16), **kwargs)


@pytest.mark.parametrize("exporter,opset", [("dynamo", 18), ("dynamo", 23), ("torchscript", 17)])
@pytest.mark.parametrize(
    "preset,eps", [("paper", 1e-8), ("torch", 1e-9)], ids=["paper-outside-1e-8", "inside-1e-9"]
)
def test_tiny_eps_survives_export_and_zero_rows_stay_zero(tmp_path, preset, eps, exporter, opset):
    # the dynamo exporter's optimizer reads a scalar constant within 1e-8 of zero as 0
    # and deletes "+ eps": all-zero rows then gave NaN in ONNX Runtime (0 / 0)
    from rmsnorm_core import RMSNormSpec, reference
    from rmsnorm_torch import RMSNorm

    spec = RMSNormSpec.preset(preset, eps=eps)
    module = RMSNorm.from_spec(spec, 64)
    path = export_onnx(
        module, tmp_path / "m.onnx", torch.randn(2, 64), opset=opset, exporter=exporter
    )
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    x[[1, 3]] = 0.0
    y = _session(path).run(None, {"x": x})[0]
    assert np.all(y[[1, 3]] == 0.0), y[[1, 3]]
    np.testing.assert_allclose(
        y, reference.rms_norm(x, spec, np.ones(64, np.float32)), rtol=1e-5, atol=1e-6
    )


# torch's TorchScript-based exporter says it is deprecated, and that a ScriptModule's
# forward has no Python signature; it still runs
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:no signature found:UserWarning")
@pytest.mark.parametrize("opset", [17, 20])
def test_a_traced_module_exports_with_torchs_own_onnx_exporter(tmp_path, opset):
    """``torch.jit.trace`` then ``torch.onnx.export`` (TorchScript exporter): the trace
    holds the plain ops, which that exporter takes at every opset (``aten::rms_norm``,
    what a traced ``torch.nn.RMSNorm`` holds, has no symbolic there)."""
    from rmsnorm_torch import RMSNorm

    m = RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    traced = torch.jit.trace(m, torch.randn(2, 8))
    path = tmp_path / "traced.onnx"
    torch.onnx.export(traced, (torch.randn(2, 8),), str(path), opset_version=opset, dynamo=False)
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(
        _run_first_input(path, x), m(x).detach().numpy(), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("exporter, opset", MAIN_OPSETS)
def test_a_model_whose_forward_names_its_input_otherwise_exports(tmp_path, exporter, opset):
    """``export_onnx`` on a model holding our norms, whose forward's argument is not
    called ``x`` (``nn.Sequential``'s is ``input``): the dynamo exporter's dynamic shapes
    are given by position (by name, ``x``, torch.export refused it), and the graph runs
    in ONNX Runtime at another batch size."""
    from rmsnorm_torch import RMSNorm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), RMSNorm(8), torch.nn.Linear(8, 8))
    path = export_onnx(model, tmp_path / "model.onnx", torch.randn(2, 8), opset, exporter)
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(4))
    # float32 through ONNX Runtime's own matmuls: their summation order is not torch's
    got = _run_first_input(path, x)
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
