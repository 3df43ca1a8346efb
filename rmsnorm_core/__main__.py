"""``python -m rmsnorm_core`` runs the ``rmsnorm`` CLI."""

import sys

from rmsnorm_core.cli._cli import main

sys.exit(main())
