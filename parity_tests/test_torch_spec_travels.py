"""The module's spec is its one source of truth: forward, ``.spec``, a saved
checkpoint and an ONNX export agree after every assignment the module allows,
and the assignments it refuses say why."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
from _parity import check_forward  # noqa: E402
from _torch_helpers import to_numpy, to_torch  # noqa: E402

from rmsnorm_core import (  # noqa: E402
    RMSNormError,
    load,
    sample_shape,
    save,
    testing,  # noqa: E402
)
from rmsnorm_core.testing import make_problem  # noqa: E402
from rmsnorm_torch import (  # noqa: E402
    MUTABLE_FIELDS,
    ResidualRMSNorm,
    RMSNorm,
    export_onnx,
    layers_from_module,
    modules_from_layers,
)

# (field, new value, input dtype that makes the change visible)
ASSIGNMENTS = [
    ("axes", (1,), "float32"),
    ("eps", 0.5, "float32"),
    ("eps_placement", "outside", "float32"),
    ("compute_dtype", "float64", "float32"),
    ("cast_order", "before_scale", "bfloat16"),
    ("output_dtype", "promote", "bfloat16"),
    ("scale_offset", 1.0, "float32"),
    ("partial", 0.5, "float32"),
    ("residual_dtype", "float32", "bfloat16"),
    ("scale_multiplies", "inverse", "float32"),
]


def test_every_mutable_field_is_covered():
    assert {a[0] for a in ASSIGNMENTS} == set(MUTABLE_FIELDS)


@pytest.mark.parametrize("field,value,dtype", ASSIGNMENTS, ids=[a[0] for a in ASSIGNMENTS])
def test_assignment_updates_spec_forward_checkpoint_and_export(field, value, dtype, tmp_path):
    residual = field == "residual_dtype"
    m = (ResidualRMSNorm if residual else RMSNorm)(16)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    before = m.spec
    setattr(m, field, value)
    assert m.spec == before.replace(**{field: value})
    assert getattr(m.spec, field) == (tuple(value) if field == "axes" else value)
    assert getattr(m, field) == getattr(m.spec, field)
    # forward computes the new spec (checked against the reference, not against itself)
    shape = sample_shape(m.spec, (16,), batch=(5, 3))
    problem = make_problem(m.spec, dtype, shape, residual=residual)
    problem = type(problem)(
        m.spec, problem.x, to_numpy(m.weight), None, problem.dy, problem.residual
    )
    with torch.no_grad():
        out = (
            m(to_torch(problem.x), to_torch(problem.residual))
            if residual
            else m(to_torch(problem.x))
        )
    y, s = out if residual else (out, None)
    result = testing.check_forward(problem, to_numpy(y), None if s is None else to_numpy(s))
    assert result.passed, f"forward after {field}=: {result.reason}"
    if residual:
        assert s.dtype == torch.float32
    # scripting sees the new spec too
    scripted = torch.jit.script(m)
    with torch.no_grad():
        out2 = (
            scripted(to_torch(problem.x), to_torch(problem.residual))
            if residual
            else scripted(to_torch(problem.x))
        )
    assert torch.equal(out2[0] if residual else out2, y)
    # a checkpoint saved from the module carries the same spec and rebuilds the same layer
    save(tmp_path / "m.safetensors", layers_from_module(torch.nn.ModuleDict({"m": m})))
    (layer,) = load(tmp_path / "m.safetensors").values()
    assert layer.spec == m.spec
    if residual:
        return  # the rebuilt layer and the ONNX export are the plain layer
    rebuilt = modules_from_layers({"m": layer})["m"]
    with torch.no_grad():
        assert torch.equal(rebuilt(to_torch(problem.x)), y)
    # an ONNX export computes the new spec on another shape than its sample
    sample = torch.zeros(sample_shape(m.spec, (16,), batch=(2,)), dtype=to_torch(problem.x).dtype)
    path = export_onnx(m, tmp_path / "m.onnx", sample, opset=17, exporter="torchscript")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = problem.x.astype(np.float32) if dtype == "bfloat16" else problem.x
    onnx_y = session.run(None, {"x": feed})[0].astype(to_numpy(y).dtype)
    check_forward(problem, onnx_y, name=f"onnx after {field}=")


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("use_bias", True, r"cannot change use_bias \(False -> True\) on an existing module"),
        ("use_scale", False, r"cannot change use_scale \(True -> False\)"),
        ("elementwise_affine", False, r"cannot change use_scale \(True -> False\)"),
        ("param_dtype", "bfloat16", r"cannot change param_dtype \('float32' -> 'bfloat16'\)"),
        ("normalized_shape", (4,), r"normalized_shape=\(4,\) cannot be assigned"),
        ("axes", (0, 1), r"normalized_shape=\(16,\) has 1 dims but the spec normalizes 2 axes"),
        # a negative eps is torch's, computed without a spec (test_torch_eps_attribute.py)
        ("eps", "small", r"eps='small' is not accepted; eps must be a real number"),
        ("cast_order", "llama", r"cast_order='llama' is not accepted"),
        ("spec", {"eps": 1.0}, r"spec must be an RMSNormSpec, got dict"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith(("cannot", "r")) else None,
)
def test_refused_assignments_change_nothing(field, value, match):
    m = RMSNorm(16)
    before = m.spec
    with pytest.raises(RMSNormError, match=match):
        setattr(m, field, value)
    assert m.spec == before


def test_param_dtype_follows_the_parameters():
    m = RMSNorm(16).to(torch.bfloat16)
    assert m.spec.param_dtype == "bfloat16"
    (layer,) = layers_from_module(torch.nn.ModuleDict({"m": m})).values()
    assert layer.spec == m.spec and layer.scale.dtype.name == "bfloat16"


def test_positional_calls_of_torch_nn_rmsnorm_work_unchanged():
    args = ((16,), 1e-5, True, None, torch.float64)
    ours, theirs = RMSNorm(*args), torch.nn.RMSNorm(*args)
    assert ours.normalized_shape == theirs.normalized_shape and ours.eps == theirs.eps
    assert ours.weight.dtype == theirs.weight.dtype == torch.float64
    x = torch.randn(3, 16, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    with pytest.raises(TypeError):
        RMSNorm(16, 1e-5, True, None, torch.float32, True)  # bias is keyword-only
