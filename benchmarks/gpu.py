"""``python -m benchmarks.gpu [--smoke] [ARGS]``: ``rmsnorm bench --gpu [ARGS]``.

Achieved bandwidth of ours against the peers on the GPU (see
``rmsnorm_core.bench._bench_gpu``), written to ``benchmarks/results/gpu-<device>.json``.
``--smoke`` on a machine without CUDA runs the Triton kernels under the
interpreter (it sets ``TRITON_INTERPRET=1`` for this process): end to end on a
tiny shape, a check of the harness and never a speed.
"""

from __future__ import annotations

import os
import sys

from rmsnorm_core.cli._cli import main


def _prepare(argv: list[str]) -> None:
    if "--smoke" in argv:
        import torch

        if not torch.cuda.is_available():  # before triton is imported: it reads it then
            os.environ.setdefault("TRITON_INTERPRET", "1")


if __name__ == "__main__":
    _prepare(sys.argv[1:])
    sys.exit(main(["bench", "--gpu", *sys.argv[1:]]))
