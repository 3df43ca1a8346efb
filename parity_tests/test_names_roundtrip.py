"""Layer names survive torch -> flax -> torch and flax -> torch -> flax exactly."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmsnorm_core import (
    NeutralLayer,
    RMSNormError,
    RMSNormSpec,
    flax_to_torch,
    param_tree_from_layers,
    state_arrays_from_layers,
    torch_to_flax,
)

SEGMENT = st.one_of(
    st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=8),
    st.integers(0, 12).map(str),
)
NAMES = st.lists(SEGMENT, min_size=1, max_size=5).map(".".join)


def _index_after_underscore(name):
    parts = name.split(".")
    return any(a.endswith("_") and b.isdigit() for a, b in zip(parts[:-1], parts[1:], strict=True))


@given(NAMES)
def test_torch_names_round_trip(name):
    if _index_after_underscore(name):  # "a_.0": Flax's "a__0" would read back as "a_0"
        with pytest.raises(RMSNormError, match=r"has no Flax name that maps back to it"):
            torch_to_flax(name)
        return
    assert flax_to_torch(torch_to_flax(name)) == name


@given(NAMES.filter(lambda n: not any(s.isdigit() for s in n.split("."))))
def test_flax_names_round_trip(name):
    # flax names have no all-digit segment (list members are "layers_0")
    assert torch_to_flax(flax_to_torch(name)) == name


@pytest.mark.parametrize(
    "torch_name,flax_name",
    [
        ("model.layers.0.norm_1", "model.layers_0.norm__1"),
        ("layers.0.1.norm", "layers_0_1.norm"),
        ("norm", "norm"),
        ("blocks.10.attn_norm", "blocks_10.attn_norm"),
    ],
)
def test_known_names(torch_name, flax_name):
    assert torch_to_flax(torch_name) == flax_name and flax_to_torch(flax_name) == torch_name


def _layer():
    return NeutralLayer(RMSNormSpec(), np.ones(4, np.float32))


def test_names_that_collide_after_mapping_are_an_error():
    layers = {"a.norm": _layer(), "b.norm": _layer()}
    with pytest.raises(
        RMSNormError, match=r"layers 'a.norm' and 'b.norm' both map to the name 'x'"
    ):
        state_arrays_from_layers(layers, name_map=lambda n: "x")
    with pytest.raises(RMSNormError, match=r"both map to the name 'x'"):
        param_tree_from_layers(layers, name_map=lambda n: "x")


def test_a_layer_inside_another_is_an_error_in_a_param_tree():
    with pytest.raises(RMSNormError, match=r"layer 'a.b' lies inside another layer's parameters"):
        param_tree_from_layers({"a": _layer(), "a.b": _layer()})
