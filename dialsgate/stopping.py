"""SIGTERM (a CI job cancelled or timed out) and SIGHUP (its terminal closed) stop a run as Ctrl-C
does: ``Stopped``, a ``KeyboardInterrupt``, is raised where the main thread is, so every ``with``
block unwinds and removes the containers the run started (``dialsgate check`` and a pytest session
of the plugin, which pytest unwinds on a KeyboardInterrupt as on Ctrl-C). Ended by such a signal's
default, a run left its served container, the folder's code in it, until removed by hand.

    previous = stop_on((signal.SIGTERM, signal.SIGHUP))   # in the main thread
    restore(previous)
"""

from __future__ import annotations

import signal


class Stopped(KeyboardInterrupt):
    """The run was stopped by the signal numbered ``args[0]``."""

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.args[0]).name}"


def stop_on(signals: tuple[signal.Signals, ...]) -> dict:
    """Raise ``Stopped`` on each of ``signals`` that is at its default; a signal ignored by whoever
    started the run (nohup) stays ignored. A second one ends the process at once, as its default.
    Returns the handlers replaced (``restore``)."""

    def stop(number, frame):
        for one in signals:
            signal.signal(one, signal.SIG_DFL)
        raise Stopped(number)

    previous = {}
    for one in signals:
        if signal.getsignal(one) is signal.SIG_DFL:
            previous[one] = signal.signal(one, stop)
    return previous


def restore(previous: dict) -> None:
    for one, handler in previous.items():
        signal.signal(one, handler)
