"""``python -m benchmarks [ARGS]`` runs ``rmsnorm bench [ARGS]``."""

from __future__ import annotations

import sys

from rmsnorm_core.cli._cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
