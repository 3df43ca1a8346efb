"""``python -m rmsnorm_core`` runs the ``rmsnorm`` CLI."""

import sys

from ._cli import main

sys.exit(main())
