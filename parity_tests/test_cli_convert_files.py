"""``rmsnorm convert`` on the files people have: overrides honoured or refused, only the
norm tensors read, layer names in every error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("jax")

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402
from rmsnorm_core.io._safetensors import serialize  # noqa: E402


@pytest.fixture
def files(tmp_path):
    torch.save({"model.norm.weight": torch.ones(4)}, tmp_path / "sd.pt")
    return {"sd": tmp_path / "sd.pt"}


def test_convert_honours_overrides_and_infers_only_what_is_not_set(files, tmp_path):
    from rmsnorm_core import load

    out = tmp_path / "o.safetensors"
    assert (
        main(["convert", str(files["sd"]), str(out), "--preset", "llama", "--set", "axes=1"]) == 0
    )
    (layer,) = load(out).values()
    assert layer.spec.axes == (1,) and layer.spec.param_dtype == "float32"
    assert main(["convert", str(files["sd"]), str(out), "--preset", "llama"]) == 0
    (layer,) = load(out).values()
    assert layer.spec == RMSNormSpec.preset("llama") and not layer.spec.use_bias


def test_flax_side_errors_name_the_layer():
    import ml_dtypes

    from rmsnorm_core import RMSNormError
    from rmsnorm_flax import layers_from_params

    tree = {
        "params": {
            "blocks_3": {
                "norm": {"scale": np.ones(4, np.float32), "bias": np.ones(4, ml_dtypes.bfloat16)}
            }
        }
    }
    with pytest.raises(
        RMSNormError, match=r"layer 'blocks_3.norm': its bias is bfloat16 but its weight float32"
    ):
        layers_from_params(tree, RMSNormSpec())


def test_convert_reads_only_the_norm_tensors_of_a_large_state_dict(tmp_path):
    big = tmp_path / "model.safetensors"
    tensors = {
        "model.embed.weight": np.zeros((50, 1024, 1024), np.float32),
        "model.norm.weight": np.ones(64, np.float32),
    }
    big.write_bytes(serialize(tensors, {"format": "pt"}))
    del tensors
    code = textwrap.dedent(
        f"""
        import resource
        from rmsnorm_core.cli._cli import main
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        code = main(["convert", {str(big)!r}, {str(tmp_path / "n.safetensors")!r}, "--preset", "llama"])
        print(code, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    code, grown_mb = r.stdout.split()[-2:]
    assert code == "0", r.stderr
    assert int(grown_mb) < 50, f"peak memory grew by {grown_mb} MB converting a 200 MB file"


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's prototype/beta layouts warn
@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda: torch.ones(4).to_sparse(), "torch.sparse_coo"),
        (lambda: torch.ones(2, 4).to_sparse_csr(), "torch.sparse_csr"),
        (lambda: torch.nested.nested_tensor([torch.ones(4), torch.ones(3)]), "nested"),
    ],
    ids=["sparse-coo", "sparse-csr", "nested"],
)
def test_convert_refuses_a_tensor_that_is_not_dense_naming_its_key(tmp_path, capsys, make, kind):
    torch.save({"model.norm.weight": make()}, tmp_path / "odd.pt")
    out = tmp_path / "o.safetensors"
    assert main(["convert", str(tmp_path / "odd.pt"), str(out), "--preset", "llama"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"rmsnorm convert: error: state dict key 'model.norm.weight' holds a {kind} tensor; "
        "accepted: a dense (torch.strided) tensor"
    ]
    assert not out.exists()
