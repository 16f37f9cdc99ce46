"""The environment a child process of the gate starts with.

A child started with ``env=None`` reads the C library's environment array while it executes
(CPython's subprocess starts it with ``vfork``): when another thread of the gate sets or removes a
variable at that moment (an import doing ``os.environ[...] = ...``, a test's ``monkeypatch``), the
array may have been moved and the start fails with ``[Errno 14] Bad address``, or passes garbage.
The gate starts engine commands from background threads (the early work, the relay, the served
model's start), so every child gets a copy made here, in the starting thread.
"""

from __future__ import annotations

import os


def child_environment() -> dict[str, str]:
    """A copy of this process's environment, for ``subprocess``'s ``env=``."""
    while True:
        try:
            return dict(os.environ)
        except KeyError:  # a variable removed by another thread while copied (the copy reads names, then values)
            continue
