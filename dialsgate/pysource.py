"""Python source read as a syntax tree (``ast``), one parse at a time in the process.

CPython 3.11 counts the depth of the tree it is converting in state shared by the whole
interpreter, not per thread: two threads parsing at once can fail with ``SystemError: AST
constructor recursion depth mismatch`` (python/cpython#106905). A gate run parses in more than one
thread (the static checks, and the folder's needs and pickle audit made while its worker container
starts), so every parse of dialsgate, vermin's included, holds ``PARSE_LOCK``.
"""

from __future__ import annotations

import ast
import threading

#: Held by every ``ast.parse`` of the gate (and around vermin, which parses by itself).
PARSE_LOCK = threading.RLock()


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse``, under ``PARSE_LOCK``."""
    with PARSE_LOCK:
        return ast.parse(source, filename=filename)


def literal(text: str):
    """``ast.literal_eval`` (a parse too), under ``PARSE_LOCK``."""
    with PARSE_LOCK:
        return ast.literal_eval(text)
