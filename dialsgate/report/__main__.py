"""python -m dialsgate.report: see dialsgate.report."""

import sys

from dialsgate.report import main

sys.exit(main())
