"""``python -m dialsgate.gate TEMPLATE ...``: the same as ``dialsgate check TEMPLATE ...``."""

import sys

from dialsgate.gate.cli import entry

entry(["check", *sys.argv[1:]])
