"""No process-global state decides numerics: eager calls in one thread are bit-identical
while other threads torch.export, ONNX-export (opsets 18 and 23) and torch.compile.

Before, ``torch.compiler.is_compiling()`` (a process-global flag any export sets)
sent other threads' eager calls off the blocked kernel, and a module-global
"native op allowed" flag let them run ``F.rms_norm``, which rounds at other
points: llama fp16 lost bit-parity. ``export_onnx`` also exported the caller's
module in place, so a thread sharing it saw meta weights.
"""

from __future__ import annotations

import threading
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import COMPILE_OPTIONS, RMSNorm, export_onnx  # noqa: E402

SPEC = RMSNormSpec.preset("llama", param_dtype="float16")
# a blocked-kernel size and a graph-path size
INPUTS = [torch.randn(64, 1024).to(torch.float16) * 3, torch.randn(6, 40).to(torch.float16) * 3]


def _module(n):
    m = RMSNorm.from_spec(SPEC, n).eval()
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    return m


def test_eager_results_do_not_depend_on_other_threads(tmp_path):
    shared = [_module(x.shape[-1]) for x in INPUTS]
    with torch.no_grad():
        expected = [m(x) for m, x in zip(shared, INPUTS, strict=True)]
    stop = threading.Event()
    mismatches, errors, calls = [], [], [0]

    def eager():
        while not stop.is_set():
            with torch.no_grad():
                for m, x, want in zip(shared, INPUTS, expected, strict=True):
                    got = m(x)
                    calls[0] += 1
                    if not torch.equal(got, want):
                        mismatches.append(int((got != want).sum()))

    def exporter(kind, i):
        try:
            x = INPUTS[i % 2]
            sample = torch.zeros(2, x.shape[-1], dtype=x.dtype)
            if kind == "export":  # torch's own exporters trace the module they are given:
                # another one. strict=True (dynamo): the non-strict tracer patches
                # nn.Module.__call__ for the whole process while it runs, so every module
                # called from another thread meanwhile (torch.nn.RMSNorm too, and ours,
                # which keeps torch's __call__) is refused by torch.fx, whatever it is
                torch.export.export(_module(x.shape[-1]), (sample,), strict=True)
            elif kind == "compile":
                compiled = torch.compile(
                    _module(x.shape[-1]), fullgraph=True, options=COMPILE_OPTIONS
                )
                compiled(sample)
            else:  # ours exports a copy, so the shared module itself may be exported
                export_onnx(shared[i % 2], tmp_path / f"m{kind}-{i}.onnx", sample, opset=kind)
        except Exception as err:  # reported below
            errors.append(f"{kind}: {type(err).__name__}: {err}")

    workers = [threading.Thread(target=eager) for _ in range(2)]
    for w in workers:
        w.start()
    jobs = [("export", 0), (23, 0), (18, 1), ("compile", 0), (23, 1), ("export", 1)]
    start = time.perf_counter()
    for kind, i in jobs:  # two at a time, interleaved
        pair = [threading.Thread(target=exporter, args=(kind, i)), threading.Thread(target=eager)]
        for t in pair:
            t.start()
        pair[0].join(timeout=120)
    stop.set()
    for w in workers:
        w.join(timeout=60)
    assert not errors, errors
    assert calls[0] > 20, f"only {calls[0]} eager calls ran ({time.perf_counter() - start:.0f} s)"
    assert not mismatches, f"{len(mismatches)} eager calls changed their bits while others exported"
    with torch.no_grad():  # and the shared modules are untouched
        assert all(
            torch.equal(m(x), want) for m, x, want in zip(shared, INPUTS, expected, strict=True)
        )
        assert all(m.weight.device.type == "cpu" and m._onnx_mode.name == "OFF" for m in shared)
