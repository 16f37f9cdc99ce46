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

#: A source of more tokens (names, numbers, any other character) than this is not parsed: the
#: syntax trees of one 8 MiB module of ``0,`` (within the read cap) took the gate 82 s and 7.5 GB.
#: A handler holds a few thousand; a module of 100,000 literal floats about 400,000.
PARSE_TOKENS_CAP = 1_000_000


def _classes() -> bytes:
    """A byte table: a name or number character to ``a``, white space to a space, any other to ``p``."""
    table = bytearray(b"p" * 256)
    for character in b"0123456789_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
        table[character] = ord("a")
    for character in b" \t\n\r\f\v":
        table[character] = ord(" ")
    return bytes(table)


_CLASSES = _classes()


class SourceTooLarge(ValueError):
    """A source of more than PARSE_TOKENS_CAP tokens: its tree would cost the gate far more than its size."""


def source_tokens(data: bytes) -> int:
    """Runs of name and number characters, plus every other character that is not white space.
    Counted with bytes' own methods: a regular expression made an object of every match (740 MB)."""
    classes = data.translate(_CLASSES)
    return classes.count(b"p") + classes.count(b" a") + classes.count(b"pa") + classes.startswith(b"a")


def parse_cost_problem(source: str | bytes) -> str | None:
    """Why ``source`` is not parsed (too many tokens), or None. Fewer bytes than the cap need no count."""
    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    if len(data) <= PARSE_TOKENS_CAP:
        return None
    tokens = source_tokens(data)
    if tokens <= PARSE_TOKENS_CAP:
        return None
    return f"it holds about {tokens:,} tokens, more than PARSE_TOKENS_CAP ({PARSE_TOKENS_CAP:,}): it is not parsed (keep data out of .py files: a .npy beside it)"


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse``, under ``PARSE_LOCK``; ``SourceTooLarge`` (a ValueError) past PARSE_TOKENS_CAP."""
    problem = parse_cost_problem(source)
    if problem:
        raise SourceTooLarge(problem)
    with PARSE_LOCK:
        return ast.parse(source, filename=filename)


def literal(text: str):
    """``ast.literal_eval`` (a parse too), under ``PARSE_LOCK``."""
    with PARSE_LOCK:
        return ast.literal_eval(text)
