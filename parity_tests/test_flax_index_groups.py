"""``axis_index_groups`` (flax's ``lax.pmean`` over groups of devices): without
``spec=`` our linen and nnx ``RMSNorm`` compute it as flax's own layer does, bit for
bit in ``y``, ``dx`` and ``dscale`` under ``pmap`` (the checks of
``_flax_index_groups_checks.py``, run in a subprocess with 8 simulated CPU devices:
XLA_FLAGS must be set before jax is imported). With ``spec=``, and in
``ResidualRMSNorm`` (no flax counterpart), it is refused by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _check_script import assert_passed, assert_ran_all, run_checks

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_core import RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402

SCRIPT = Path(__file__).with_name("_flax_index_groups_checks.py")
NAMES = [
    *(
        f"{api}-{groups}-{dtype}"
        for api in ("linen", "nnx")
        for groups in ("halves", "strided")
        for dtype in ("float32", "bfloat16")
    ),
    "intercept",
    "vmap-refused-alike",
]
GROUPS = [[0, 1], [2, 3]]
REFUSED = r"axis_index_groups=\(?\[?\(?\[?0, 1.* is not supported with spec= or in ResidualRMSNorm"


# one worker runs this module, so its module-scoped fixture (a subprocess run or a site
# build) runs once instead of once on each worker
pytestmark = pytest.mark.xdist_group("flax-index-groups")


@pytest.fixture(scope="module")
def pmap_run():
    return run_checks(SCRIPT, devices=8)


@pytest.mark.parametrize("name", NAMES)
def test_index_groups_under_pmap_are_flax_s(pmap_run, name):
    assert_passed(pmap_run, name)


def test_the_script_ran_every_check(pmap_run):
    assert_ran_all(pmap_run, NAMES)


def test_linen_with_spec_is_refused():
    m = ours_linen.RMSNorm(axis_index_groups=GROUPS, spec=RMSNormSpec.preset("flax"))
    with pytest.raises(RMSNormError, match=REFUSED):
        m.init(jax.random.key(0), jnp.ones((2, 8)))


def test_nnx_with_spec_is_refused():
    with pytest.raises(RMSNormError, match=REFUSED):
        ours_nnx.RMSNorm(8, axis_index_groups=GROUPS, spec=RMSNormSpec(), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_residual_layer_is_refused(api):
    with pytest.raises(RMSNormError, match=REFUSED):
        if api == "linen":
            m = ours_linen.ResidualRMSNorm(axis_index_groups=GROUPS)
            m.init(jax.random.key(0), jnp.ones((2, 8)), jnp.ones((2, 8)))
        else:
            ours_nnx.ResidualRMSNorm(8, axis_index_groups=GROUPS, rngs=nnx.Rngs(0))


def test_nnx_layer_keeps_flax_s_field():
    layer = ours_nnx.RMSNorm(8, axis_index_groups=GROUPS, rngs=nnx.Rngs(0))
    want = nnx.RMSNorm(8, axis_index_groups=GROUPS, rngs=nnx.Rngs(0))
    assert layer.layer is None and layer.axis_index_groups == want.axis_index_groups


def test_replace_norms_leaves_a_flax_layer_with_groups_in_place():
    model = nnx.Sequential(nnx.RMSNorm(8, axis_index_groups=GROUPS, rngs=nnx.Rngs(0)))
    report = ours_nnx.replace_norms(model)
    assert not report and isinstance(model.layers[0], nnx.RMSNorm)
    assert any("axis_index_groups" in why for why in report.skipped.values()), report.skipped
