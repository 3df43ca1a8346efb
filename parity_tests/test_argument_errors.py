"""Messages that name the argument (issue 30 item 12): the torch entry points raise
``TypeError`` for an argument of the wrong type (an ``AttributeError`` leaked before), a
float8 tensor is named by its dtype, and the CLI's errors name the bad argument and exit 2
(1 is a check that ran and failed), as every ``--help`` says."""

from __future__ import annotations

import pytest

from rmsnorm_core import RMSNormSpec, RMSNormTypeError
from rmsnorm_core.cli._cli import build_parser, main

torch = pytest.importorskip("torch")

from rmsnorm_torch import ResidualRMSNorm, RMSNorm, rms_norm, rms_norm_residual  # noqa: E402
from rmsnorm_torch.functional import rms_norm as dropin  # noqa: E402

X = torch.randn(2, 4)
F8 = X.to(torch.float8_e4m3fn)
DROPIN = [
    ("input-list", lambda: dropin([[1.0] * 4], 4), r"^input must be a Tensor, got list$"),
    ("input-none", lambda: dropin(None, 4), r"^input must be a Tensor, got NoneType$"),
    ("weight-list", lambda: dropin(X, 4, [1.0] * 4), r"^weight must be a Tensor or None, got list"),
    ("eps-str", lambda: dropin(X, 4, None, "0.1"), r"^eps='0.1' is not accepted; eps must be a"),
    ("eps-bool", lambda: dropin(X, 4, None, True), r"^eps=True is not accepted"),
    ("shape-str", lambda: dropin(X, "4"), r"^normalized_shape='4' is not accepted; expected an"),
    ("shape-bool", lambda: dropin(X[:, :1], True), r"^normalized_shape=True is not accepted"),
    ("shape-bools", lambda: dropin(X[:, :1], (True,)), r"^normalized_shape=\(True,\) is not"),
    ("shape-float", lambda: dropin(X, 4.0), r"^normalized_shape=4.0 is not accepted"),
    ("input-float8", lambda: dropin(F8, 4), r"^input has dtype torch.float8_e4m3fn; rms_norm acc"),
    ("weight-float8", lambda: dropin(X, 4, F8[0]), r"^weight has dtype torch.float8_e4m3fn"),
]


@pytest.mark.parametrize("call,match", [c[1:] for c in DROPIN], ids=[c[0] for c in DROPIN])
def test_the_functional_dropin_names_the_argument(call, match):
    with pytest.raises(RMSNormTypeError, match=match) as err:
        call()
    assert isinstance(err.value, TypeError)  # what torch raises for these


def test_the_dropin_still_takes_what_torch_takes():
    ref = torch.nn.functional.rms_norm(X, [4])
    for shape in (4, [4], (4,), torch.Size([4])):
        assert torch.equal(dropin(X, shape), ref)
    assert torch.equal(dropin(X, [4], None, 1e-6), torch.nn.functional.rms_norm(X, [4], None, 1e-6))


SPEC = RMSNormSpec()
OTHERS = [
    ("rms_norm-x", lambda: rms_norm([1.0], SPEC), r"^x must be a Tensor, got list$"),
    ("rms_norm-weight", lambda: rms_norm(X, SPEC, [1.0] * 4), r"^weight must be a Tensor or"),
    (
        "rms_norm-bias",
        lambda: rms_norm(X, RMSNormSpec(use_bias=True), torch.ones(4), [0.0] * 4),
        r"^bias must be a Tensor or None, got list$",
    ),
    ("residual", lambda: rms_norm_residual(X, [1.0], SPEC), r"^residual must be a Tensor, got"),
    ("module-x", lambda: RMSNorm(4)([[1.0] * 4]), r"^x must be a Tensor, got list$"),
    ("module-none", lambda: RMSNorm(4)(None), r"^x must be a Tensor, got NoneType$"),
    ("residual-module", lambda: ResidualRMSNorm(4)(X, [1.0]), r"^residual must be a Tensor"),
    ("module-float8", lambda: RMSNorm(4)(F8), r"^x has dtype float8_e4m3fn; accepted dtypes"),
    ("spec-float8", lambda: rms_norm(F8, SPEC, None), r"^x has dtype float8_e4m3fn; accepted"),
    (
        "scripted-float8",
        lambda: torch.jit.script(RMSNorm(4))(F8),
        r"x has dtype float8_e4m3fn; accepted dtypes are float16",
    ),
]


@pytest.mark.parametrize("call,match", [c[1:] for c in OTHERS], ids=[c[0] for c in OTHERS])
def test_every_entry_names_a_wrong_argument(call, match):
    with pytest.raises((TypeError, torch.jit.Error), match=match):
        call()


def test_spec_set_names_the_bad_argument(capsys):
    assert main(["spec", "--set", "=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rmsnorm spec: error: --set '=3' is not accepted; FIELD='' must be one")
    assert "replace()" not in err and len(err.splitlines()) == 1
    assert main(["spec", "--set", "epsilon=3"]) == 2
    assert "FIELD='epsilon' must be one of axes, eps," in capsys.readouterr().err


@pytest.mark.parametrize("command", ["verify", "export"])
def test_a_torch_file_is_to_be_converted_first(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model.norm.weight": torch.ones(4)}, "model.pt")
    argv = {
        "verify": ["verify", "--quick", "--weights", "model.pt"],
        "export": ["export", "model.pt", "--torchscript", "out.pt"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "truncated or corrupt" not in err, err
    assert (
        "'model.pt' is in the torch format, not a neutral checkpoint; convert it first: "
        "rmsnorm convert model.pt model-norms.safetensors --preset NAME"
    ) in err, err


INPUT_ERRORS = [
    ["verify", "--quick", "--spec", "missing.json"],
    ["verify", "--quick", "--spec", "bad.json"],
    ["verify", "--quick", "--baseline", "bad.json"],
    ["verify", "--quick", "--weights", "missing.safetensors"],
    ["convert", "missing.safetensors", "out.msgpack"],
    ["export", "missing.safetensors", "--torchscript", "out.pt"],
    ["spec", "llama", "--set", "eps=-1"],
    ["presets", "--bogus"],
]


@pytest.mark.parametrize("argv", INPUT_ERRORS, ids=["-".join(a[:3]) for a in INPUT_ERRORS])
def test_input_errors_exit_2(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


COMMANDS = ["presets", "spec", "verify", "bench", "infer", "convert", "export", "docs"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_states_the_exit_statuses(command, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([command, "--help"] if command else ["--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 success; 1 a check ran and failed" in text, text[-400:]
    assert "2 an error: bad arguments, a missing, unreadable or invalid input" in text
