"""A folder's strings made inert for every output the gate writes: the terminal, the HTML report
and JUnit XML.

A template value (Handler, Name, an input's name), a file name of the folder or a message of
model code is the folder author's text. Written raw, an escape sequence clears a terminal and
prints its own verdict over the gate's, a bidi override reorders what a reader sees, and a
control character makes JUnit XML invalid (GitLab then drops the whole report). ``inert``
replaces each such character by a visible escape (``\\x1b``, ``\\u202e``); newline and tab stay.
Its output holds only characters of XML 1.0's Char production, and ``inert(inert(s)) ==
inert(s)``, so a writer may apply it to text that already passed through it.
"""

from __future__ import annotations

import re

#: Characters a terminal acts on, a reader cannot see, or XML 1.0 does not allow, by range
#: (newline and tab excepted: the gate's own layout uses them).
INERT_RANGES = (
    ("\x00", "\x08", "C0 controls before tab: NUL, backspace, ..."),
    ("\x0b", "\x1f", "C0 controls after newline: CR, ESC (starts terminal escape sequences), ..."),
    ("\x7f", "\x9f", "DEL and the C1 controls (0x9b is a one-byte CSI on some terminals)"),
    ("\u061c", "\u061c", "Arabic letter mark (bidi)"),
    ("\u200e", "\u200f", "left-to-right and right-to-left marks (bidi)"),
    ("\u2028", "\u2029", "line and paragraph separators (a line break a reader does not expect)"),
    ("\u202a", "\u202e", "bidi embeddings and overrides (U+202E reverses the text after it)"),
    ("\u2066", "\u2069", "bidi isolates"),
    ("\ud800", "\udfff", "lone surrogates (not encodable, not XML characters)"),
    ("\ufffe", "\uffff", "non-characters outside XML 1.0's Char production"),
)

_NOT_INERT = re.compile("[" + "".join(f"{re.escape(low)}-{re.escape(high)}" for low, high, _ in INERT_RANGES) + "]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text) -> str:
    """``text`` (anything: ``str()`` of it) with every character of ``INERT_RANGES`` shown as a
    visible escape; newline and tab kept."""
    return _NOT_INERT.sub(_visible, text if isinstance(text, str) else str(text))
