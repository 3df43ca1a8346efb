"""Batch invariance (issue 31 item 4): the same rows give the same bits in batches of 1,
7, 64 and 320 rows, in every runner of ``rmsnorm verify`` (its ``batch`` check), and the
check can fail."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rmsnorm_core import RMSNormSpec
from rmsnorm_core.backends import Backend, Runner
from rmsnorm_core.cli._cli import main
from rmsnorm_core.testing import (
    Outcome,
    cases,
    check_batches,
    expected_forward,
    make_problem,
    with_batches,
)

BATCH = next(c for c in cases("verify") if c.id == "batch")


def _rounds_big_batches_apart(p):
    """A kernel whose rounding changes with the batch: above 8 rows, one unit in the
    last place on the first element of every row."""
    y, s = expected_forward(p)
    if len(y) > 8:
        y = y.copy()
        y[:, 0] = np.nextafter(y[:, 0], np.inf, dtype=y.dtype)
    return Outcome(y, s)


def _invariant(p):
    return Outcome(*expected_forward(p))


def test_the_check_finds_a_kernel_that_switches_with_the_batch():
    p = make_problem(RMSNormSpec(), "float32", (32, 16), batches=(1, 7, 16))
    bad = check_batches(p, with_batches(_rounds_big_batches_apart, p, _rounds_big_batches_apart(p)))
    assert not bad.passed and "batch 1: 1 of 1 rows differ" in bad.reason
    # rows of batches 1 and 7 differ in one element each; batch 16 rounds as the full call
    assert bad.bit_share == pytest.approx(1 - (1 + 7) / ((1 + 7 + 16) * 16))
    good = check_batches(p, with_batches(_invariant, p, _invariant(p)))
    assert good.passed and good.bit_share == 1.0
    missing = check_batches(p, _invariant(p))  # a runner that did not run the sizes
    assert not missing.passed and "0 batch outputs" in missing.reason


def test_the_batch_case_spans_every_torch_kernel_threshold():
    pytest.importorskip("torch")
    from _sizes import MIDDLE_SIZE

    from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

    row = int(np.prod(BATCH.shape[1:]))
    sizes = [k * row for k in (*BATCH.batches, BATCH.shape[0])]
    for threshold in (MIDDLE_SIZE, FUSED_LIMIT):
        assert min(sizes) < threshold < max(sizes), (threshold, sizes)
    assert any(MIDDLE_SIZE <= n < FUSED_LIMIT for n in sizes)


def test_verify_fails_a_batch_dependent_runner_and_reports_a_declared_variance(
    registered, tmp_path, capsys
):
    registered(Backend("switchy", runners=(
        Runner("switchy-eager", _rounds_big_batches_apart),
        Runner("switchy-jit", _rounds_big_batches_apart, batch_variance="compiles per shape"),
        Runner("steady-eager", _invariant),
    )))  # fmt: skip
    report = tmp_path / "r.json"
    argv = ["verify", "--preset", "torch", "--backend", "switchy", "--report", str(report)]
    assert main(argv) == 1
    rows = [r for r in json.loads(report.read_text())["records"] if r["check"] == "batch"]
    by_runner = {r["runner"]: r for r in rows if r["dtype"] == "float32"}
    assert by_runner["switchy-eager"]["status"] == "fail"
    assert by_runner["switchy-jit"]["status"] == "varies"
    assert "compiles per shape" in by_runner["switchy-jit"]["reason"]
    assert by_runner["steady-eager"]["status"] == "pass" and by_runner["steady-eager"]["digest"]
    out = capsys.readouterr().out
    assert "batch" in out and "varies" in out


def _batch_one_differs(run) -> bool:
    x = np.random.default_rng(0).standard_normal(BATCH.shape).astype(np.float32) * 3
    full = np.asarray(run(x))
    return bool((np.asarray(run(x[:1])) != full[:1]).any())


def test_the_declared_variance_is_the_upstreams_own():
    """flax.linen.RMSNorm under jit rounds a lone row unlike the same row in a batch of 320
    (float32, this jax): what ``flax-linen``'s ``batch_variance`` says."""
    jax = pytest.importorskip("jax")
    import flax.linen as nn

    module = nn.RMSNorm()
    variables = module.init(jax.random.PRNGKey(0), np.zeros((1, BATCH.shape[1]), np.float32))
    assert _batch_one_differs(lambda x: jax.jit(module.apply)(variables, x))
