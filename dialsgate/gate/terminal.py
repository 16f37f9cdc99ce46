"""The gate's terminal: everything ``dialsgate check`` writes there (its verdict, its
progress, the worker containers' messages) passes through ``dialsgate.inert``, so a
folder's string never reaches the terminal as an escape sequence.

The gate writes no colour of its own; one added later must be written after ``inert`` (to
``InertStream.target``), so that only the gate can colour.
"""

from __future__ import annotations

import codecs
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dialsgate.inert import inert

#: Bytes read at a time from a layer's output (a runaway line is relayed in pieces, never held).
RELAY_CHUNK_BYTES = 64 * 1024


class InertStream(io.TextIOBase):
    """A text stream that writes ``inert(text)`` to ``target``."""

    def __init__(self, target):
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(inert(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return getattr(self.target, "encoding", "utf-8")


@contextmanager
def inert_terminal() -> Iterator[None]:
    """sys.stdout and sys.stderr escaped for the duration (restored afterwards)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = InertStream(sys.stdout), InertStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved


def relay(fd: int, out=None) -> None:
    """Copy a child's output (``fd``, until it closes) to ``out`` (sys.stdout), made inert:
    bytes that are not UTF-8 show as ``\\xNN``."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    while True:
        chunk = os.read(fd, RELAY_CHUNK_BYTES)
        text = decoder.decode(chunk, final=not chunk)
        target = out if out is not None else sys.stdout
        if text:
            target.write(inert(text))
            target.flush()
        if not chunk:
            return
