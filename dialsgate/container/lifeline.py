"""The served container's lifeline: it stops the server when the gate that started it has ended,
however it ended.

A gate ended by SIGKILL (``kill -9``, the OOM killer, a CI runner's hard stop) removes nothing:
its served container would go on running the folder's code until removed by hand. The lifeline is
one exec into the container, a shell that waits for the end of its standard input and then stops
the server (PID 1, ``mlserver start``, which ends on SIGTERM once it has started). The gate holds
the other end of that pipe and never writes to it; the kernel closes it when the gate's process
ends, whatever ends it. A shell and not the image's Python: it lives in the container's memory,
which the peak-memory check measures, at about a megabyte.

On a normal end the gate removes the container first (the exec ends with it) and then reaps the
exec's client here.
"""

from __future__ import annotations

import contextlib
import subprocess

from dialsgate.container.engine import Engine
from dialsgate.spawning import child_environment

#: ``read`` returns at the end of input (the gate wrote no line); PID 1 is the server. Again every
#: second: PID 1 ignores a signal it has no handler for, and MLServer installs its own only once
#: it has started.
LIFELINE = ["sh", "-c", "read -r _; while kill -TERM 1; do sleep 1; done"]


class Lifeline:
    def __init__(self, engine: Engine, container: str):
        self.engine, self.container = engine, container
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        """Once the container exists. Without an engine client to run, there is no lifeline (the
        gate's own end still removes the container)."""
        argv = self.engine.exec_argv(self.container, LIFELINE)
        with contextlib.suppress(OSError):
            self._process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_environment()
            )

    def close(self) -> None:
        """After the container is removed: the exec's client has ended or ends now."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
