"""``python -m dialsgate``: the ``dialsgate`` command (dialsgate.gate.cli)."""

from dialsgate.gate.cli import entry

entry()
