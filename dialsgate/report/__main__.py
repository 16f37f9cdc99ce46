"""python -m dialsgate.report: see dialsgate.report."""

import sys

from . import main

sys.exit(main())
