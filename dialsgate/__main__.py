"""``python -m dialsgate``: the ``dialsgate`` command (dialsgate.gate.cli)."""

import sys

from dialsgate.gate.cli import main

sys.exit(main())
