"""``python -m dialsgate.gate TEMPLATE ...``: the same as ``dialsgate check TEMPLATE ...``."""

import sys

from dialsgate.gate.cli import main

sys.exit(main(["check", *sys.argv[1:]]))
