"""``python -m dialsgate check template.yaml``: the same as the ``dialsgate`` command."""

import sys

from .cli import main

sys.exit(main())
